package configs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

const planted = "CamPa55word"

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		// URLs
		{"rtsp://viewer:CamPa55word@10.0.0.5:554/stream1", "rtsp://viewer:***@10.0.0.5:554/stream1"},
		{"http://viewer:CamPa55word@10.0.0.6/video.mjpg", "http://viewer:***@10.0.0.6/video.mjpg"},
		{"rtsps://a:b@h", "rtsps://a:***@h"},
		{"rtsp://viewer:p@ss@10.0.0.5/x", "rtsp://viewer:***@10.0.0.5/x"}, // an @ in the password, unescaped
		{"rtsp://viewer:p%40ss@10.0.0.5/x", "rtsp://viewer:***@10.0.0.5/x"},
		// a '#', '/' or '?' in the password, unescaped, as some cameras require
		{"rtsp://admin:Cam#Pa55@10.0.0.5/stream", "rtsp://admin:***@10.0.0.5/stream"},
		{"rtsp://admin:Cam/Pa55@10.0.0.5:554/s", "rtsp://admin:***@10.0.0.5:554/s"},
		{"rtsp://admin:Cam?Pa55@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"},
		{"rtsp://admin:12#34@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"},
		{"tcp://u:p#w@host:1883", "tcp://u:***@host:1883"},
		{"rtspsrc location=rtsp://admin:Cam#Pa55@10.0.0.5/s latency=0 ! appsink", "rtspsrc location=rtsp://admin:***@10.0.0.5/s latency=0 ! appsink"},
		{`"rtsp://a:b#c@h/x" "http://host:8080/x"`, `"rtsp://a:***@h/x" "http://host:8080/x"`},
		{"http://host:8080/x rtsp://u:p@h", "http://host:8080/x rtsp://u:***@h"},
		{"http://host:8080/x?mail=a@b", "http://host:***@b"},                 // over-masked, the safe way
		{"http://host/x?mail=a@b", "http://host/x?mail=a@b"},                 // no ':' before: nothing to hide
		{"rtsp://rtsp://admin:CamPa55word@host/s", "rtsp://rtsp:***@host/s"}, // pasted twice
		{"rtsp://a:b://c:CamPa55word@h", "rtsp://a:***@h"},
		{"rtsp://viewer:@10.0.0.5/x", "rtsp://viewer:***@10.0.0.5/x"},
		{"rtsp://admin@10.0.0.5/x", "rtsp://admin@10.0.0.5/x"}, // a user name alone
		{"tcp://agent:CamPa55word@127.0.0.1:1883", "tcp://agent:***@127.0.0.1:1883"},
		{"http://10.0.0.6/video.cgi?user=admin&pwd=CamPa55word&res=2", "http://10.0.0.6/video.cgi?user=admin&pwd=***&res=2"},
		{"http://10.0.0.6/video.cgi?password=CamPa55word", "http://10.0.0.6/video.cgi?password=***"},
		// text that repeats a URL (OpenCV's error)
		{"cannot open stream: Error opening file: http://viewer:CamPa55word@127.0.0.1:9/x with api backend: 1900",
			"cannot open stream: Error opening file: http://viewer:***@127.0.0.1:9/x with api backend: 1900"},
		{`"rtsp://u:CamPa55word@h/a" and 'http://v:CamPa55word@g/b'`, `"rtsp://u:***@h/a" and 'http://v:***@g/b'`},
		// GStreamer pipelines
		{"rtspsrc location=rtsp://viewer:CamPa55word@10.0.0.5:554/stream1 latency=200 ! rtph264depay ! appsink",
			"rtspsrc location=rtsp://viewer:***@10.0.0.5:554/stream1 latency=200 ! rtph264depay ! appsink"},
		{`souphttpsrc location="http://viewer:CamPa55word@10.0.0.6/x" ! jpegdec ! appsink`,
			`souphttpsrc location="http://viewer:***@10.0.0.6/x" ! jpegdec ! appsink`},
		{"rtspsrc location=rtsp://10.0.0.5/s user-id=viewer user-pw=CamPa55word ! appsink",
			"rtspsrc location=rtsp://10.0.0.5/s user-id=*** user-pw=*** ! appsink"},
		{`souphttpsrc user-id="viewer" user-pw="Cam Pa55word" ! appsink`, `souphttpsrc user-id="***" user-pw="***" ! appsink`},
		{`souphttpsrc user-pw='CamPa55word' proxy-id=p proxy-pw = CamPa55word! appsink`, `souphttpsrc user-pw='***' proxy-id=*** proxy-pw = ***! appsink`},
		{`souphttpsrc user-pw="Cam\"Pa55word" ! appsink`, `souphttpsrc user-pw="***" ! appsink`},
		{`souphttpsrc user-pw=Cam\ Pa55word ! appsink`, `souphttpsrc user-pw=*** ! appsink`},
		{`souphttpsrc USER-PW=CamPa55word ! appsink`, `souphttpsrc USER-PW=*** ! appsink`},
		{`souphttpsrc user-pw="CamPa55word`, `souphttpsrc user-pw="***"`}, // an open quote
		// no secrets: unchanged
		{"0", "0"},
		{"/dev/video0", "/dev/video0"},
		{"/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_ABCD1234-video-index0", "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_ABCD1234-video-index0"},
		{"testdata/demo/conveyor.avi", "testdata/demo/conveyor.avi"},
		{"file:///var/lib/x.mp4", "file:///var/lib/x.mp4"},
		{"rtsp://10.0.0.5:554/Streaming/Channels/102", "rtsp://10.0.0.5:554/Streaming/Channels/102"},
		{"videotestsrc pattern=ball ! video/x-raw,format=BGR,width=640 ! videoconvert ! appsink drop=true max-buffers=1",
			"videotestsrc pattern=ball ! video/x-raw,format=BGR,width=640 ! videoconvert ! appsink drop=true max-buffers=1"},
		{`aravissrc camera-name="Basler-21987654" exposure=2000 ! appsink`, `aravissrc camera-name="Basler-21987654" exposure=2000 ! appsink`},
		{"pylonsrc device-serial-number=40012345 cam::ExposureTime=1500 ! appsink", "pylonsrc device-serial-number=40012345 cam::ExposureTime=1500 ! appsink"},
		{"no frame for 10s", "no frame for 10s"},
		{"", ""},
	}
	for _, c := range cases {
		got := Redact(c.in)
		if got != c.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		if again := Redact(got); again != got {
			t.Errorf("Redact is not idempotent on %q: %q", got, again)
		}
		if strings.Contains(got, planted) {
			t.Errorf("Redact(%q) keeps the password", c.in)
		}
	}
}

func TestRedactError(t *testing.T) {
	cause := fmt.Errorf("open rtsp://u:%s@h/x: %w", planted, os.ErrNotExist)
	err := RedactError(fmt.Errorf("camera: %w", cause))
	if strings.Contains(err.Error(), planted) || !strings.Contains(err.Error(), "rtsp://u:***@h/x") {
		t.Fatalf("RedactError: %q", err)
	}
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, context.Canceled) {
		t.Fatalf("RedactError lost or invented the cause: %v", err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), planted) {
			t.Fatalf("unwrapping reaches the password: %q", e)
		}
	}
	plain := errors.New("no frame for 10s")
	if RedactError(plain) != plain || RedactError(nil) != nil {
		t.Fatal("RedactError changed an error without secrets")
	}
}

// TestPrintRedacts: the config printout masks the camera and broker passwords.
func TestPrintRedacts(t *testing.T) {
	path := write(t, `
agent: {id: x}
mqtt:
  broker: tcp://agent:`+planted+`@127.0.0.1:1883
  password: `+planted+`
ui:
  auth:
    token: `+planted+`-token
    users: [{name: anna, password_hash: '$2a$04$`+planted+`Mhwx5hNzB38cSp0f3NiR5u7/2BvWd8o47G1JtGdRfZ'}]
models:
  m: {path: /nonexistent}
cameras:
  - name: a
    source: rtsp://viewer:`+planted+`@10.0.0.5:554/stream1
    pipeline: {detector: m}
  - name: b
    source: souphttpsrc location=http://10.0.0.6/x user-id=viewer user-pw=`+planted+` ! jpegdec ! videoconvert ! appsink
    pipeline: {detector: m}
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, planted) {
		t.Fatalf("config print shows the password:\n%s", s)
	}
	for _, want := range []string{"rtsp://viewer:***@10.0.0.5:554/stream1", "user-pw=***", "tcp://agent:***@127.0.0.1:1883", "name: anna", "password_hash: <redacted>"} {
		if !strings.Contains(s, want) {
			t.Errorf("config print lacks %q:\n%s", want, s)
		}
	}
	if cfg.Cameras[0].Source != "rtsp://viewer:"+planted+"@10.0.0.5:554/stream1" {
		t.Errorf("Print changed the config itself: %q", cfg.Cameras[0].Source)
	}
}

// TestLoadErrorsRedact: an error from Load that quotes a value does not repeat its password.
func TestLoadErrorsRedact(t *testing.T) {
	path := write(t, "agent: {id: x}\nmqtt:\n  broker: tcp://agent:"+planted+"@\ncameras: []\n")
	_, err := Load(path)
	if err == nil || strings.Contains(err.Error(), planted) || !strings.Contains(err.Error(), "mqtt.broker") {
		t.Fatalf("Load: %v", err)
	}
}

// FuzzRedact plants a password in a URL's userinfo and in a GStreamer property, between
// arbitrary text: Redact never returns it, never panics, and is idempotent on any input.
func FuzzRedact(f *testing.F) {
	f.Add("rtspsrc location=", "rtsp", "viewer", planted, "10.0.0.5:554/stream1", " ! appsink")
	f.Add("", "http", "u", "p@ss", "h/x", "")
	f.Add("Error opening file: ", "http", "viewer", planted, "127.0.0.1:9/x", " with api backend: 1900")
	f.Add(`souphttpsrc location="`, "http", "", "x", `h/" user-pw="`, `"`)
	f.Add("/dev/video", "file", "a", "b", "0", "")
	f.Add("rtsp://", "rtsp", "admin", "Cam#Pa55", "host/s", "")
	f.Fuzz(func(t *testing.T, prefix, scheme, user, pass, host, rest string) {
		for _, in := range []string{prefix, scheme, user, pass, host, rest, prefix + scheme + user + pass + host + rest} {
			if out := Redact(in); Redact(out) != out {
				t.Fatalf("not idempotent on %q: %q then %q", in, out, Redact(out))
			}
		}
		if pass == "" || pass == Masked || strings.ContainsAny(pass, "@ \t\r\n\v\f\"'<>\\!:=") {
			return // not a password a URL or an unquoted property can carry as it is
		}
		if !validScheme(scheme) || strings.ContainsAny(user, ":/?#@ \t\r\n\v\f\"'<>") || strings.ContainsAny(host, "@ \t\r\n\v\f") {
			return
		}
		inURL := prefix + scheme + "://" + user + ":" + pass + "@" + host + rest
		masked := prefix + scheme + "://" + user + ":" + Masked + "@" + host + rest
		if !strings.Contains(masked, pass) { // the password is nowhere else in the text
			if out := Redact(inURL); strings.Contains(out, pass) {
				t.Fatalf("Redact(%q) = %q keeps the password %q", inURL, out, pass)
			}
		}
		for _, q := range []string{"", `"`, "'"} {
			inProp := prefix + " user-pw=" + q + pass + q + " " + rest
			maskedProp := prefix + " user-pw=" + q + Masked + q + " " + rest
			if !strings.Contains(maskedProp, pass) {
				if out := Redact(inProp); strings.Contains(out, pass) {
					t.Fatalf("Redact(%q) = %q keeps the password %q", inProp, out, pass)
				}
			}
		}
	})
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

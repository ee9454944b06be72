package configs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maskingRow is one row of the table in docs/cameras.md, "Camera passwords": the forms of a
// secret in a source (each in backticks) and how it is shown.
type maskingRow struct {
	forms   []string
	shownAs string
	text    string
}

func cameraMaskingRows(t *testing.T) []maskingRow {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "docs", "cameras.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "### Camera passwords")
	if !ok {
		t.Fatal(`docs/cameras.md has no "### Camera passwords"`)
	}
	var rows []maskingRow
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if !strings.HasPrefix(line, "|") || len(cells) != 2 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.Contains(cells[0], "in the source") {
			continue
		}
		row := maskingRow{text: cells[0]}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			row.forms = append(row.forms, m[1])
		}
		if m := backticked.FindStringSubmatch(cells[1]); m != nil {
			row.shownAs = m[1]
		}
		rows = append(rows, row)
	}
	if len(rows) < 3 {
		t.Fatalf("docs/cameras.md, Camera passwords: %d rows of forms, want the URL, query and GStreamer rows", len(rows))
	}
	return rows
}

// sourcesFor turns a form the docs list into camera sources that hold the password pw: a
// whole URL or pipeline fragment as written (its "secret" replaced), a query parameter name
// (`password=`) in a URL, a GStreamer property name (`proxy-pw`) in a pipeline, quoted and
// not. A URL form the row says also goes "inside a pipeline" is tried in one too.
func sourcesFor(form, rowText, pw string) []string {
	const pipeline = "rtspsrc location=rtsp://10.0.0.5/stream1 %s ! decodebin ! videoconvert ! appsink"
	switch {
	case strings.Contains(form, "://"):
		url := strings.ReplaceAll(form, "secret", pw)
		out := []string{url}
		if strings.Contains(rowText, "pipeline") {
			out = append(out, "rtspsrc location="+url+" ! decodebin ! videoconvert ! appsink")
		}
		return out
	case strings.HasPrefix(form, "?") || strings.HasSuffix(form, "="):
		param := strings.TrimPrefix(form, "?")
		if strings.HasSuffix(param, "=") {
			param += pw
		}
		param = strings.ReplaceAll(param, "secret", pw)
		return []string{"http://10.0.0.6/mjpeg?" + param, "http://10.0.0.6/mjpeg?res=hd&" + param}
	case strings.Contains(form, "="):
		return []string{fmt.Sprintf(pipeline, strings.ReplaceAll(form, "secret", pw))}
	case regexp.MustCompile(`^[a-z]+-[a-z]+$`).MatchString(form):
		return []string{fmt.Sprintf(pipeline, form+"="+pw), fmt.Sprintf(pipeline, form+`="`+pw+`"`)}
	}
	return nil
}

// TestConfigPrintMasksWhatCamerasMdPromises: for every form of a camera password that
// docs/cameras.md lists, `cvedge config print` of a config with such a source shows no
// password, and shows the form the docs give; the MQTT password (from the file and from the
// environment) and the LLM key in the environment are not shown either.
func TestConfigPrintMasksWhatCamerasMdPromises(t *testing.T) {
	var cams strings.Builder
	var sources, passwords []string
	var shown []string
	n := 0
	for _, row := range cameraMaskingRows(t) {
		if row.shownAs == "" || len(row.forms) == 0 {
			t.Errorf("docs/cameras.md, Camera passwords: row %q names no form or no \"shown as\"", row.text)
			continue
		}
		shown = append(shown, strings.ReplaceAll(row.shownAs, "?", ""))
		for _, form := range row.forms {
			pw := fmt.Sprintf("CamPw%dZ", n)
			srcs := sourcesFor(form, row.text, pw)
			if len(srcs) == 0 {
				t.Errorf("docs/cameras.md, Camera passwords: no source built for the form %q", form)
			}
			for _, src := range srcs {
				fmt.Fprintf(&cams, "  - {name: cam%d, source: %q, pipeline: {detector: m}}\n", n, src)
				sources, passwords = append(sources, src), append(passwords, pw)
				n++
			}
		}
	}
	t.Setenv("CVEDGE_MQTT_PASSWORD", "MqttEnvPw")
	t.Setenv("CVEDGE_LLM_KEY", "LlmKeyPw")
	path := write(t, "agent: {id: x}\nmqtt: {username: agent}\nmodels: {m: {path: m.zip}}\n"+
		"llm: {endpoint: 'https://llm.example/v1/chat/completions', model: m}\ncameras:\n"+cams.String())
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	printed := out.String()
	for i, src := range sources {
		if strings.Contains(printed, passwords[i]) {
			t.Errorf("config print shows the password of %q", src)
		}
	}
	for _, s := range shown {
		if !strings.Contains(printed, s) {
			t.Errorf("config print lacks %q, the masked form docs/cameras.md shows", s)
		}
	}
	for _, secret := range []string{"MqttEnvPw", "LlmKeyPw"} {
		if strings.Contains(printed, secret) {
			t.Errorf("config print shows %s", secret)
		}
	}
	if !strings.Contains(printed, "password: <redacted>") {
		t.Errorf("config print does not say the MQTT password is redacted:\n%s", printed)
	}
}

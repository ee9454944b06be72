package agent_test

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/preprocess"
)

// stationAgent runs the demo agent (the conveyor video in a loop, detector and classifier,
// parts tracked and counted) with the operator station on a free loopback port, and returns
// the station's URL once it answers.
func stationAgent(t *testing.T) string {
	t.Helper()
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.UI.Enabled = true
	cfg.MQTT.StatsInterval = 500 * time.Millisecond
	runAgent(t, cfg)
	url := "http://" + cfg.HTTP.Listen
	testenv.WaitFor(t, "the station", 20*time.Second, func() bool {
		resp, err := http.Get(url + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

// TestStationLiveViewInBrowser opens the station in a real browser (headless Chromium, a
// kiosk's 1280x800 window): the demo camera's live picture arrives with the boxes drawn
// (pixels of the box colour in a screenshot of the picture), and the part counts and the
// last decisions show beside it. The agent draws frames only while the page is open.
//
// CVEDGE_SCREENSHOTS=DIR writes the page's screenshot there (docs/img keeps the one
// docs/operator.md shows).
func TestStationLiveViewInBrowser(t *testing.T) {
	ctx := testenv.Browser(t)
	url := stationAgent(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`article.camera[data-camera="conveyor"] img.live`)),
	); err != nil {
		t.Fatal(err)
	}
	// a frame has arrived when the picture has a size; the counts once a part was decided
	for _, cond := range []string{
		`document.querySelector('article.camera img.live').naturalWidth > 0`,
		`document.querySelector('article.camera .facts').innerText.includes('parts')`,
		`document.querySelector('article.camera .facts table:last-of-type') !== null && document.querySelectorAll('article.camera .facts table').length == 2`,
	} {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage:\n%s", cond, err, page)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`article.camera img.live`)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if n := boxPixels(img); n < 200 {
		t.Fatalf("the live picture shows %d pixels of the box colour, want the boxes drawn (200 or more)", n)
	}
	if dir := os.Getenv("CVEDGE_SCREENSHOTS"); dir != "" {
		page, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "station-live.png"), page, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('article.camera').innerText`))
	t.Logf("the camera's card:\n%s", text)
}

// boxPixels counts the pixels close to preprocess.BoxColor (JPEG and scaling blur it a little).
func boxPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			want := preprocess.BoxColor
			if g>>8 > uint32(want.G)-60 && r>>8 < 90 && bl>>8 < 90 {
				n++
			}
		}
	}
	return n
}

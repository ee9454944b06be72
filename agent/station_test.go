package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// stationAgent runs the demo agent (the conveyor video in a loop, detector and classifier,
// parts tracked and counted) with the operator station on a free loopback port, and returns
// the station's URL once it answers.
func stationAgent(t *testing.T) string {
	_, url := stationAgentWith(t, nil)
	return url
}

// stationAgentWith is stationAgent with the config changed by edit first; it returns the
// config too.
func stationAgentWith(t *testing.T, edit func(*configs.Config)) (*configs.Config, string) {
	t.Helper()
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.UI.Enabled = true
	cfg.MQTT.StatsInterval = 500 * time.Millisecond
	if edit != nil {
		edit(cfg)
	}
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
	return cfg, url
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
	// a few frames of the demo have no part in view: look at the picture until one shows
	// boxes, for up to 50 screenshots
	most := 0
	for i := 0; i < 50 && most < 200; i++ {
		shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`article.camera img.live`)))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, boxPixels(img))
		time.Sleep(100 * time.Millisecond)
	}
	if most < 200 {
		t.Fatalf("the live picture shows at most %d pixels of the box colour in 50 screenshots, want the boxes drawn (200 or more)", most)
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

// TestStationReviewInBrowser corrects a sample through the review page in a real browser,
// with the keyboard as an operator would: the answer lands in the data set folder under the
// tag chosen, the correction goes out on the agent's feedback topic, and the confusion table
// counts the pair.
func TestStationReviewInBrowser(t *testing.T) {
	ctx := testenv.Browser(t)
	var feedback *testenv.Inbox
	cfg, url := stationAgentWith(t, func(c *configs.Config) {
		// every prediction is a sample (the audit rule at rate 1), so one waits at once
		c.Samples.Audit = configs.Rule{Enabled: true, Rate: 1, PerMinute: 60, PerHour: 600}
		c.Samples.FullFrame = true
		feedback = testenv.Subscribe(t, c.MQTT.Broker, c.MQTT.TopicPrefix+"/feedback")
	})
	// the page opens before the first sample comes, and shows it when it does
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(wait,
		chromedp.Navigate(url+"/review"),
		chromedp.WaitVisible(chromedp.CSS(`#sample`)),
		chromedp.WaitVisible(chromedp.CSS(`#tags button`)),
	); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the review page shows no sample: %v\n%s", err, page)
	}
	// the first tag offered that is not the predicted one, and its number key
	pick, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => {
		const predicted = document.getElementById('pred-tag').textContent;
		const buttons = [...document.querySelectorAll('#tags button')];
		const i = buttons.findIndex(b => !b.classList.contains('is-predicted'));
		return {predicted, index: i, tag: buttons[i].lastChild.textContent};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	predicted, tag, index := pick["predicted"].(string), pick["tag"].(string), int(pick["index"].(float64))
	if dir := os.Getenv("CVEDGE_SCREENSHOTS"); dir != "" {
		if page, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(filepath.Join(dir, "station-review.png"), page, 0o644)
		}
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(fmt.Sprint(index+1))); err != nil {
		t.Fatal(err)
	}
	t.Logf("predicted %q, corrected to %q with key %d", predicted, tag, index+1)

	testenv.WaitFor(t, "the correction on the feedback topic", 30*time.Second, func() bool {
		for _, raw := range feedback.Get(cfg.MQTT.TopicPrefix + "/feedback") {
			var fb payload.Feedback
			if json.Unmarshal(raw, &fb) == nil && fb.Tag == tag {
				return true
			}
		}
		return false
	})
	testenv.WaitFor(t, "the answer in the data set folder", 10*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(cfg.UI.Review.Dataset, tag, "*.jpg"))
		return len(files) > 0
	})

	if err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/confusion"),
		chromedp.WaitVisible(chromedp.CSS(`#pairs`)),
	); err != nil {
		t.Fatal(err)
	}
	cond := fmt.Sprintf(`document.getElementById('pairs').innerText.includes(%q) && document.getElementById('pairs').innerText.includes(%q)`, predicted, tag)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the confusion table lacks %s -> %s: %v\n%s", predicted, tag, err, page)
	}
	if dir := os.Getenv("CVEDGE_SCREENSHOTS"); dir != "" {
		if page, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(filepath.Join(dir, "station-confusion.png"), page, 0o644)
		}
	}
}

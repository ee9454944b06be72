package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestReview: cvedge review, run as a process against a test broker, shows on /api/state
// the agent whose retained status is there, from flags alone or from a config file with a
// token; SIGTERM stops it with exit 0 and a summary.
func TestReview(t *testing.T) {
	b := testenv.StartMosquitto(t)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL).SetClientID("test-line3"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	raw, _ := json.Marshal(payload.Status{Schema: 1, Agent: "line3", State: "online", Updated: time.Now().UTC()})
	if tok := cl.Publish("cvedge/line3/status", 1, true, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	t.Run("flags", func(t *testing.T) {
		dir, addr := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		reviewProcess(t, addr, "", "review", "--broker", b.URL, "--listen", addr, "--client-id", "test-review-flags",
			"--review-dir", filepath.Join(dir, "review"), "--dataset", filepath.Join(dir, "dataset"))
		if _, err := os.Stat(filepath.Join(dir, "review", "pending")); err != nil {
			t.Errorf("the review queue: %v", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		dir, addr := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		token := "0123456789abcdef0123"
		cfg := filepath.Join(dir, "review.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("agent: {id: station, log_format: text}\nmqtt: {broker: %q}\nhttp: {listen: %q}\n"+
			"ui: {auth: {token: %q}, review: {dir: queue, dataset: answers}}\n", b.URL, addr, token)), 0o600)
		reviewProcess(t, addr, token, "review", "--config", cfg)
		if _, err := os.Stat(filepath.Join(dir, "queue", "pending")); err != nil {
			t.Errorf("ui.review.dir relative to the config file: %v", err)
		}
	})
}

// reviewProcess runs cvedge with args until /api/state (with the token, when given) shows
// agent line3, then stops it with SIGTERM and checks it ends well.
func reviewProcess(t *testing.T, addr, token string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CVEDGE_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", &out, &errb)
		}
	}()
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	var v station.View
	testenv.WaitFor(t, "agent line3 on /api/state", 15*time.Second, func() bool {
		code, body := get("/api/state")
		return code == http.StatusOK && json.Unmarshal(body, &v) == nil && len(v.Agents) == 1
	})
	if v.Agents[0].Status.Agent != "line3" || v.Agents[0].Status.State != "online" {
		t.Errorf("/api/state: %+v", v)
	}
	if token != "" {
		if resp, err := http.Get("http://" + addr + "/api/state"); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the token: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(string(body), "cvedge_review_agents 1") {
		t.Errorf("/metrics: %d %s", code, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "1 agents;") {
			t.Errorf("after SIGTERM: %v; stdout %q", err, &out)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("cvedge review did not stop within 15s of SIGTERM")
	}
}

// TestReviewRefuses: without a config the station listens on loopback only; flags and a
// config file do not mix; a prefix pattern that would follow every message, and a config
// file that opens the station to the network without sign-in, are refused.
func TestReviewRefuses(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "open.yaml")
	os.WriteFile(cfg, []byte("agent: {id: station}\nhttp: {listen: '0.0.0.0:9810'}\n"), 0o600)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"review", "--listen", "0.0.0.0:9810"}, 2, "can be reached from other machines"},
		{[]string{"review", "--listen", ":9810"}, 2, "can be reached from other machines"},
		{[]string{"review", "--listen", ""}, 2, "--listen: give host:port"},
		{[]string{"review", "--config", cfg, "--broker", "tcp://x:1883"}, 2, "--broker: the config file says it (mqtt.broker)"},
		{[]string{"review", "--prefix", "cvedge/#"}, 2, "--prefix"},
		{[]string{"review", "--broker", "ftp://x"}, 1, "--broker: scheme"},
		{[]string{"review", "--config", cfg}, 1, "ui.auth"},
		{[]string{"review", "extra"}, 2, "unknown command"},
	}
	for _, c := range cases {
		code, _, errs := cvedge(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("cvedge %q: exit %d, want %d; stderr %q, want %q", c.args, code, c.code, errs, c.want)
		}
	}
}

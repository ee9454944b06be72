package publish

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/cvedge/cvedge/configs"
)

// ClientOptions builds paho's options from the MQTT config: identity, persistent session,
// timeouts, reconnect backoff, credentials and TLS. Other MQTT clients of cvedge (the
// collector) use it too.
func ClientOptions(cfg configs.MQTT) (*paho.ClientOptions, error) {
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.PublishTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(2*time.Second, cfg.MaxReconnectInterval)).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetOrderMatters(false)
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username)
	}
	password := cfg.Password
	if cfg.PasswordFile != "" {
		raw, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		password = strings.TrimRight(string(raw), "\r\n")
	}
	if password != "" {
		opts.SetPassword(password)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, configs.RedactError(fmt.Errorf("mqtt.broker: %w", err)) // url.Error repeats the URL
	}
	t := cfg.TLS
	secure := map[string]bool{"ssl": true, "tls": true, "mqtts": true, "wss": true, "tcps": true}[u.Scheme]
	if secure || t.CAFile != "" || t.CertFile != "" {
		tc, err := tlsConfig(t)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	return opts, nil
}

func tlsConfig(t configs.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file / key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// subCheck is what one connection asked of the broker: its subscriptions, and the topic its
// own message should come back on.
type subCheck struct {
	toks []paho.Token
	conn int64
	echo string
}

// echoWait is how long the publisher waits for its own message to come back.
const echoWait = 10 * time.Second

// watchSubscriptions checks the broker's answers to each connection's subscriptions, and
// that the connection's own message comes back, and reports a refusal (the broker's access
// rules), since commands would never arrive and messages could be dropped.
func (p *Publisher) watchSubscriptions(timeout time.Duration) {
	defer p.wg.Done()
	timer := stoppedTimer()
	wait := func(d time.Duration, ch <-chan struct{}) bool {
		timer.Reset(d)
		defer timer.Stop()
		select {
		case <-p.stop:
			return false
		case <-timer.C:
			return false
		case <-ch:
			return true
		}
	}
	for {
		var sc subCheck
		select {
		case <-p.stop:
			return
		case sc = <-p.subs:
		}
		for _, t := range sc.toks {
			if !wait(timeout, t.Done()) {
				continue
			}
			st, ok := t.(*paho.SubscribeToken)
			if t.Error() != nil || !ok {
				continue
			}
			for topic, code := range st.Result() {
				if code == 0x80 {
					p.failed("subscription refused", fmt.Errorf("the broker refused the subscription to %s, so commands and feedback on it will not arrive: allow this client to read it in the broker's access rules (ACL)", topic))
				}
			}
		}
		if sc.echo == "" {
			continue
		}
		timer.Reset(echoWait)
		select {
		case <-p.stop:
			timer.Stop()
			return
		case c := <-p.echo:
			timer.Stop()
			if c != sc.conn {
				continue
			}
		case <-timer.C:
			if p.client.IsConnectionOpen() && p.upSince.Load() == sc.conn {
				p.failed("access refused", fmt.Errorf("the broker took this agent's message on %s but did not deliver it back within %s: its access rules (ACL) do not let this client publish or subscribe under its topic prefix, so messages may be dropped and commands will not arrive", sc.echo, echoWait))
			}
		}
	}
}

// connected clears the connection failure and the stall.
func (p *Publisher) connected() {
	p.upSince.Store(time.Now().UnixNano())
	p.stalled.Store(false)
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn.reason != "" && p.conn.attempts > 1 {
		p.log.Info("connected after failed attempts", "broker", p.broker, "attempts", p.conn.attempts, "since", p.conn.since.Format(time.RFC3339))
	}
	p.conn = connState{}
}

// failed records why a connection attempt failed or the connection was lost. Each kind of
// failure is logged once, with what to fix, and again only every five minutes while it
// goes on (attempts alternating between two kinds log each once).
func (p *Publisher) failed(what string, err error) {
	if err == nil {
		return
	}
	hint, detail := Explain(err), configs.Redact(err.Error())
	key, reason := what+": "+hint, what+": "+hint+" ("+detail+")"
	if hint == "" {
		key, reason = what+": "+detail, what+": "+detail
	}
	now := time.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn.reason == "" {
		p.conn.since = now
	}
	p.conn.reason = reason
	p.conn.attempts++
	if p.conn.logged == nil {
		p.conn.logged = map[string]time.Time{}
	}
	last, seen := p.conn.logged[key]
	if what == "connection lost" || (seen && now.Sub(last) < 5*time.Minute) || len(p.conn.logged) > 64 {
		return // a loss is logged by its handler
	}
	p.conn.logged[key] = now
	if !seen {
		p.log.Error("MQTT broker: "+what, "broker", p.broker, "reason", reason)
		return
	}
	p.log.Error("MQTT broker: still "+what, "broker", p.broker, "reason", reason, "attempts", p.conn.attempts,
		"since", p.conn.since.Format(time.RFC3339))
}

// Explain says what a connection error means and what to check; "" when it has no
// explanation beyond its own text.
func Explain(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var netErr net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return "the broker refused this client's credentials: check mqtt.username and mqtt.password (or mqtt.password_file), and that the broker knows this user"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id: check mqtt.client_id"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "the broker says it is unavailable: check the broker"
	case errors.As(err, &unknownCA):
		return "the broker's certificate is signed by an authority this agent does not trust: set mqtt.tls.ca_file to the CA that signed it"
	case errors.As(err, &hostErr):
		return "the broker's certificate is not for the host name in mqtt.broker: use a name it lists, or set mqtt.tls.server_name"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid (expired, or not for a server): renew it"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "certificate required"),
		strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "certificate unknown"), strings.Contains(msg, "expired certificate"):
		return "the broker rejected this agent's client certificate: check mqtt.tls.cert_file and mqtt.tls.key_file, and that the broker trusts their CA"
	case errors.As(err, &dnsErr):
		return "the broker's host name does not resolve: check mqtt.broker and DNS"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "the broker closed the connection while it was being set up: it may refuse this client (with TLS, its client certificate: mqtt.tls.cert_file), or accept no more connections"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections at mqtt.broker: is the broker running, and are the host and port right?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the broker: check mqtt.broker and the network"
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return "the broker does not answer in time: check mqtt.broker, the network and firewalls"
	}
	return ""
}

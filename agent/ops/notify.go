package ops

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends systemd service notifications (sd_notify) over NOTIFY_SOCKET. A nil
// Notifier (not run by systemd with Type=notify) does nothing.
type Notifier struct{ addr *net.UnixAddr }

// NewNotifier returns a Notifier for $NOTIFY_SOCKET, or nil when it is not set.
func NewNotifier() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Send sends one notification, such as "READY=1", "WATCHDOG=1", "STOPPING=1" or
// "RELOADING=1".
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// WatchdogInterval is systemd's WatchdogSec for this process ($WATCHDOG_USEC, when
// $WATCHDOG_PID is unset or this process), or 0 without a watchdog.
func WatchdogInterval() time.Duration {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

package configs

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestPLCDefaults: off, on loopback port 5020, four clients; the environment sets a key.
func TestPLCDefaults(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.PLC.Modbus; m.Enabled || m.Listen != "127.0.0.1:5020" || m.MaxClients != 4 {
		t.Errorf("plc.modbus defaults: %+v", m)
	}
	c, err = Load(write(t, minimal+"plc: {modbus: {enabled: true, listen: '0.0.0.0:502', max_clients: 2}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.PLC.Modbus; !m.Enabled || m.Listen != "0.0.0.0:502" || m.MaxClients != 2 {
		t.Errorf("plc.modbus: %+v", m)
	}
	t.Setenv("CVEDGE_PLC_MODBUS_LISTEN", "127.0.0.1:1502")
	if c, err = Load(write(t, minimal)); err != nil || c.PLC.Modbus.Listen != "127.0.0.1:1502" {
		t.Errorf("CVEDGE_PLC_MODBUS_LISTEN: %v, %+v", err, c)
	}
}

// TestBadPLCConfigs: each bad value is refused with the key named.
func TestBadPLCConfigs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no port", "plc: {modbus: {listen: '127.0.0.1'}}\n", `plc.modbus.listen: "127.0.0.1" must be host:port`},
		{"port zero", "plc: {modbus: {listen: '127.0.0.1:0'}}\n", `plc.modbus.listen: "127.0.0.1:0": the port must be a number from 1 to 65535`},
		{"port too big", "plc: {modbus: {listen: '127.0.0.1:70000'}}\n", "the port must be a number from 1 to 65535"},
		{"named port", "plc: {modbus: {listen: '127.0.0.1:modbus'}}\n", "the port must be a number"},
		{"host name", "plc: {modbus: {listen: 'plc.plant:502'}}\n", `plc.modbus.listen: "plc.plant:502": give an IP address`},
		{"empty while on", "plc: {modbus: {enabled: true, listen: ''}}\n", "plc.modbus.listen: empty"},
		{"no clients", "plc: {modbus: {max_clients: 0}}\n", "plc.modbus.max_clients: 0 must be from 1 to 100"},
		{"too many clients", "plc: {modbus: {max_clients: 1000}}\n", "plc.modbus.max_clients: 1000"},
		{"unknown key", "plc: {modbus: {unit_id: 1}}\n", "plc.modbus.unit_id: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, minimal+c.yaml))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// FuzzPLCListen: no address makes the check panic, and an address it accepts is host:port
// with a port the server can listen on.
func FuzzPLCListen(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5020", "[::1]:502", ":502", "0.0.0.0:0", "localhost:65536",
		"127.0.0.1", "[::1", "a:b:c", "127.0.0.1:-1", "127.0.0.1:+502", "127.0.0.1:0x1f6", "\x00:1", "[fe80::1%eth0]:502"} {
		f.Add(s, 4)
	}
	f.Fuzz(func(t *testing.T, listen string, clients int) {
		var p problems
		PLC{Modbus: PLCModbus{Enabled: true, Listen: listen, MaxClients: clients}}.validate(&p)
		for _, e := range p {
			if strings.HasPrefix(e.Error(), "plc.modbus.listen") {
				return
			}
		}
		host, port, err := net.SplitHostPort(listen)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n < 1 || n > 65535 {
			t.Fatalf("accepted %q (host %q port %q)", listen, host, port)
		}
	})
}

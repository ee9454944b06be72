package configs

import (
	"net"
	"strconv"
)

// validate checks the plc section. The address is checked whenever it is set, so that a bad
// one is reported before the server is turned on.
func (s PLC) validate(p *problems) {
	m := s.Modbus
	if m.Listen == "" && m.Enabled {
		p.add("plc.modbus.listen", "empty: give the Modbus TCP server's host:port, e.g. 127.0.0.1:5020 (this machine only) or the PLC network's address")
	} else if m.Listen != "" {
		host, port, err := net.SplitHostPort(m.Listen)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			p.add("plc.modbus.listen", "%q must be host:port, e.g. 127.0.0.1:5020: %v", m.Listen, err)
		case perr != nil || n < 1 || n > 65535:
			p.add("plc.modbus.listen", "%q: the port must be a number from 1 to 65535 (502 is Modbus's own, 5020 the default)", m.Listen)
		case host != "" && net.ParseIP(host) == nil && host != "localhost":
			p.add("plc.modbus.listen", "%q: give an IP address (or localhost), not a host name, so that the server listens where you expect", m.Listen)
		}
	}
	if m.MaxClients < 1 || m.MaxClients > 100 {
		p.add("plc.modbus.max_clients", "%d must be from 1 to 100 (Modbus clients connected at once)", m.MaxClients)
	}
}

package main

import (
	"net"
	"os"
)

// batchAddress chooses the address a controller started for a batch job
// listens on when none is given: compute nodes must reach it, so not
// loopback. The rule (documented in the user guide): the first address
// this host's name resolves to that is not loopback; else the first IPv4
// address of an interface that is up and not loopback; else 127.0.0.1
// (a single-node setup).
func batchAddress() (addr, why string) {
	if host, err := os.Hostname(); err == nil {
		if ips, err := net.LookupIP(host); err == nil {
			for _, ip := range ips {
				if ip.To4() != nil && !ip.IsLoopback() {
					return ip.String(), "the address of this host's name, " + host
				}
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String(), "the first address of interface " + iface.Name
			}
		}
	}
	return "127.0.0.1", "no other address: compute nodes must be this host"
}

package topology

import (
	"fmt"
	"net"
	"strings"
)

// loopback says whether a listen address is reachable from this machine only: localhost or a loopback IP.
// An empty host (every interface), a wildcard or any other name is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses listeners reachable from other machines with no users file, unless
// --insecure-no-auth says that is meant.
func (c *Config) checkExposure() error {
	if c.AuthFile != "" || c.InsecureNoAuth {
		return nil
	}
	for _, l := range c.listeners() {
		if !loopback(l[1]) {
			return fmt.Errorf("--%s %s is reachable from other machines and nobody would need to log in: give --auth-file with its users "+
				"(`minipipe user add NAME --roles reader,producer --auth-file FILE`), or --insecure-no-auth to serve without authentication", l[0], l[1])
		}
	}
	return nil
}

// exposed lists the listeners reachable from other machines.
func (c *Config) exposed() []string {
	var out []string
	for _, l := range c.listeners() {
		if !loopback(l[1]) {
			out = append(out, "--"+l[0]+" "+l[1])
		}
	}
	return out
}

func (c *Config) listeners() [][2]string {
	return [][2]string{{"rest-addr", c.RestAddr}, {"registry-addr", c.RegistryAddr}, {"http-addr", c.HTTPAddr}}
}

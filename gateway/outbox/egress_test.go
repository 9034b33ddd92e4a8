package outbox

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	cases := []struct {
		addr   string
		public bool
	}{
		// Each denied range with its first and last address and its
		// neighbours on both sides.
		{"0.0.0.0", false}, {"0.255.255.255", false}, {"1.0.0.0", true},
		{"9.255.255.255", true}, {"10.0.0.0", false}, {"10.255.255.255", false}, {"11.0.0.0", true},
		{"100.63.255.255", true}, {"100.64.0.0", false}, {"100.127.255.255", false}, {"100.128.0.0", true},
		{"126.255.255.255", true}, {"127.0.0.0", false}, {"127.0.0.1", false}, {"127.255.255.255", false}, {"128.0.0.0", true},
		{"169.253.255.255", true}, {"169.254.0.0", false}, {"169.254.169.254", false}, {"169.254.255.255", false}, {"169.255.0.0", true},
		{"172.15.255.255", true}, {"172.16.0.0", false}, {"172.31.255.255", false}, {"172.32.0.0", true},
		{"191.255.255.255", true}, {"192.0.0.0", false}, {"192.0.0.255", false}, {"192.0.1.0", true},
		{"192.0.1.255", true}, {"192.0.2.0", false}, {"192.0.2.255", false}, {"192.0.3.0", true},
		{"192.88.98.255", true}, {"192.88.99.0", false}, {"192.88.99.255", false}, {"192.88.100.0", true},
		{"192.167.255.255", true}, {"192.168.0.0", false}, {"192.168.255.255", false}, {"192.169.0.0", true},
		{"198.17.255.255", true}, {"198.18.0.0", false}, {"198.19.255.255", false}, {"198.20.0.0", true},
		{"198.51.99.255", true}, {"198.51.100.0", false}, {"198.51.100.255", false}, {"198.51.101.0", true},
		{"203.0.112.255", true}, {"203.0.113.0", false}, {"203.0.113.255", false}, {"203.0.114.0", true},
		{"223.255.255.255", true}, {"224.0.0.0", false}, {"239.255.255.255", false},
		{"240.0.0.0", false}, {"255.255.255.254", false}, {"255.255.255.255", false},
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"93.184.215.14", true},

		// IPv4-mapped and IPv4-compatible forms are no way around it.
		{"::ffff:127.0.0.1", false}, {"::ffff:10.1.2.3", false}, {"::ffff:169.254.169.254", false},
		{"::ffff:100.64.0.1", false}, {"::ffff:0.0.0.0", false}, {"::ffff:8.8.8.8", true},
		{"::127.0.0.1", false}, {"::10.1.2.3", false}, {"::8.8.8.8", false},
		// NAT64 (DNS64) carries an IPv4 address and is judged by it.
		{"64:ff9b::8.8.8.8", true}, {"64:ff9b::127.0.0.1", false}, {"64:ff9b::a9fe:a9fe", false}, {"64:ff9b:1::1", false},

		// IPv6: only global unicast 2000::/3, without its special ranges.
		{"::", false}, {"::1", false}, {"100::1", false},
		{"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2000::", true},
		{"2001::", false}, {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:200::", true},
		{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db8::", false}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:db9::", true},
		{"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2002::", false}, {"2002:7f00:1::", false}, {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2003::", true},
		{"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"3fff::", false}, {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"3fff:1000::", true},
		{"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"4000::", false},
		{"fc00::", false}, {"fd12:3456::1", false}, {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"fe80::", false}, {"fe80::1%eth0", false}, {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"fec0::1", false},
		{"ff00::", false}, {"ff02::1", false}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"2606:4700:4700::1111", true}, {"2001:4860:4860::8888", true}, {"2a00:1450:4001:82a::200e", true},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			if got := publicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
				t.Errorf("publicAddr(%s) = %t, want %t", tc.addr, got, tc.public)
			}
		})
	}
}

// TestEgressClientUsesNoProxy: a proxy would connect on mogate's behalf and
// the address check would only ever see the proxy.
func TestEgressClientUsesNoProxy(t *testing.T) {
	for _, allow := range []bool{false, true} {
		if newEgressClient(allow).Transport.(*http.Transport).Proxy != nil {
			t.Fatalf("allowPrivate %t: the egress transport takes a proxy", allow)
		}
	}
}

package gateway

import (
	"net"
	"net/url"

	"github.com/mogate/mogate/adapters/twilio"
)

func twilioSig(token, u string, form url.Values) string { return twilio.Signature(token, u, form) }

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

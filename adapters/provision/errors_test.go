package provision

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestCallErrorWords: transport errors are said in words, without the
// request URL the http package quotes (vonage-go-sdk's carries api_secret).
func TestCallErrorWords(t *testing.T) {
	op := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://rest.nexmo.com/account/numbers?api_key=k&api_secret=SECRET", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	cases := []struct {
		err  error
		want string
	}{
		{op(os.NewSyscallError("connect", syscall.ECONNREFUSED)), "connection refused"},
		{op(os.NewSyscallError("read", syscall.ECONNRESET)), "connection reset"},
		{op(&net.DNSError{Err: "no such host", Name: "api.example.com", IsNotFound: true}), "no such host api.example.com"},
		{op(&net.DNSError{Err: "server misbehaving", Name: "api.example.com"}), "DNS lookup of api.example.com failed"},
		{&url.Error{Op: "Get", URL: "https://x/?api_secret=SECRET", Err: context.DeadlineExceeded}, "timed out"},
		{&url.Error{Op: "Get", URL: "https://x/?api_secret=SECRET", Err: x509.UnknownAuthorityError{}}, "TLS certificate signed by an unknown authority"},
		{&url.Error{Op: "Get", URL: "https://x/?api_secret=SECRET", Err: io.EOF}, "the connection closed before an answer"},
		{op(errors.New("something else")), "something else"},
	}
	for _, tc := range cases {
		got := (&callError{origin: "https://rest.example.com", err: tc.err}).Error()
		if got != "cannot reach https://rest.example.com: "+tc.want || strings.Contains(got, "SECRET") {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
	e := &callError{origin: "https://api.example.com", status: 403, code: "20003", hint: "account_sid and auth_token"}
	if got := e.Error(); got != "HTTP 403 Forbidden from https://api.example.com (error code 20003; check account_sid and auth_token)" {
		t.Errorf("%q", got)
	}
	for in, want := range map[string]string{"20003": "20003", "": "", "12a": "", "123456789": "", "Basic abc": ""} {
		if got := digits(in); got != want {
			t.Errorf("digits(%q) = %q", in, got)
		}
	}
}

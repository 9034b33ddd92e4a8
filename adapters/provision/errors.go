package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// callError is how a REST call failed, said from what the transport saw:
// the origin dialled (api_url's, not the SDK's default host), and either
// the transport error in words or the HTTP status with the provider's
// numeric error code. It never carries an error body: an API or a proxy
// may echo the request, credentials included, in one.
type callError struct {
	origin string // scheme://host dialled
	err    error  // transport error; nil for an HTTP error
	status int
	code   string // the provider's numeric error code; "" when none
	hint   string // what to check after a 401 or 403
}

func (e *callError) Error() string {
	if e.err != nil {
		return "cannot reach " + e.origin + ": " + inWords(e.err)
	}
	msg := fmt.Sprintf("HTTP %d %s from %s", e.status, http.StatusText(e.status), e.origin)
	var more []string
	if e.code != "" {
		more = append(more, "error code "+e.code)
	}
	if (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden) && e.hint != "" {
		more = append(more, "check "+e.hint)
	}
	if len(more) > 0 {
		msg += " (" + strings.Join(more, "; ") + ")"
	}
	return msg
}

func (e *callError) Unwrap() error { return e.err }

// inWords says what went wrong on the way to the API, without the request
// URL the http package quotes (it may hold credentials in its query).
func inWords(err error) string {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var cert *tls.CertificateVerificationError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.As(err, &dns) && dns.IsNotFound:
		return "no such host " + dns.Name
	case errors.As(err, &dns):
		return "DNS lookup of " + dns.Name + " failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &unknownCA):
		return "TLS certificate signed by an unknown authority"
	case errors.As(err, &host):
		return "TLS certificate is not valid for " + host.Host
	case errors.As(err, &cert):
		return "TLS certificate not accepted"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection closed before an answer"
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u // the innermost: no URL, no request
	}
	return err.Error()
}

// twilioCode is the numeric code of Twilio's error body ({"code": 20003}).
func twilioCode(b []byte) string {
	var e struct {
		Code json.Number `json:"code"`
	}
	_ = json.Unmarshal(b, &e)
	return digits(e.Code.String())
}

// vonageCode is the numeric code of Vonage's ({"error-code": "420"}).
func vonageCode(b []byte) string {
	var e struct {
		Code string `json:"error-code"`
	}
	_ = json.Unmarshal(b, &e)
	return digits(e.Code)
}

// telnyxCode is the first error's code ({"errors": [{"code": "10009"}]}).
// Plivo's error bodies have no code, only free text.
func telnyxCode(b []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return digits(e.Errors[0].Code)
}

// digits returns s when it is 1 to 8 digits, else "": a code that is not a
// number may be anything the API chose to echo.
func digits(s string) string {
	if s == "" || len(s) > 8 || strings.Trim(s, "0123456789") != "" {
		return ""
	}
	return s
}

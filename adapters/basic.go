package adapters

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// Challenger is implemented by adapters that authenticate with HTTP Basic:
// the gateway answers a request without credentials with this
// WWW-Authenticate challenge, for providers that only send them when asked.
type Challenger interface {
	Challenge() string
}

// CheckBasic verifies HTTP Basic credentials in constant time (the hashes
// are compared, so neither length nor content leaks).
func CheckBasic(h http.Header, user, pass string) error {
	if h.Get("Authorization") == "" {
		return Missing("Authorization (HTTP Basic)")
	}
	r := http.Request{Header: h}
	u, p, ok := r.BasicAuth()
	if !ok {
		return Unauthenticated("not HTTP Basic credentials")
	}
	gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	wu, wp := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	if subtle.ConstantTimeCompare(gu[:], wu[:])&subtle.ConstantTimeCompare(gp[:], wp[:]) != 1 {
		return Unauthenticated("wrong credentials")
	}
	return nil
}

// SetBasic puts HTTP Basic credentials on h.
func SetBasic(h http.Header, user, pass string) {
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

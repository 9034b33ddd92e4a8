// Package snstest plays the AWS side of SNS for tests: a certificate for a
// test key, and an HTTP transport that serves it at SNS certificate URLs,
// records subscription confirmations, and refuses every other address.
package snstest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Certificate returns a PEM certificate for key, valid from an hour ago for
// a year, named like SNS's.
func Certificate(key *rsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseKey reads a PEM RSA private key (PKCS#8 or PKCS#1).
func ParseKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("snstest: not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
	}
	return x509.ParsePKCS1PrivateKey(block.Bytes)
}

// AWS is a transport standing in for AWS.
type AWS struct {
	Cert []byte // served for any https SNS .pem URL

	mu        sync.Mutex
	confirmed []string
	fetches   int
}

// Confirmed returns the subscription URLs that were fetched.
func (a *AWS) Confirmed() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.confirmed...)
}

// Fetches counts certificate downloads.
func (a *AWS) Fetches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fetches
}

// RoundTrip serves certificates and confirmations; anything else is an error.
func (a *AWS) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" || !strings.HasSuffix(r.URL.Hostname(), ".amazonaws.com") {
		return nil, errors.New("snstest: refused outbound request to " + r.URL.String())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	body := []byte("<ConfirmSubscriptionResponse/>")
	if strings.HasSuffix(r.URL.Path, ".pem") {
		a.fetches++
		body = a.Cert
	} else {
		a.confirmed = append(a.confirmed, r.URL.String())
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

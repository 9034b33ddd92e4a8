package provision

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	vonage "github.com/vonage/vonage-go-sdk"
)

// Vonage sets a number's moHttpUrl through vonage-go-sdk's numbers API
// (api_key and api_secret in the query string). The SDK is unmaintained: it
// panics on a transport error, and its errors may quote URLs that carry
// api_secret, so every call recovers and callers scrub errors.
type Vonage struct {
	c *vonage.NumbersClient
}

var _ Client = (*Vonage)(nil)

const vonageMethod = "the HTTP method is the account's SMS setting (dashboard, API Settings): set POST"

// vonagePage is the page size asked for (the API's maximum is 100).
const vonagePage = 100

// NewVonage returns the client of an account; apiURL "" is Vonage's public
// API (https://rest.nexmo.com).
func NewVonage(apiKey, apiSecret, apiURL string, hc *http.Client) (*Vonage, error) {
	if apiKey == "" || apiSecret == "" {
		return nil, errors.New("api_key and api_secret are needed for Vonage's REST API")
	}
	t, err := newTransport(apiURL, next(hc))
	if err != nil {
		return nil, err
	}
	c := vonage.NewNumbersClient(vonage.CreateAuthFromKeySecret(apiKey, apiSecret))
	c.Config.HTTPClient = client(hc, &vonage.APITransport{APISecret: apiSecret, Transport: t})
	if t.base != nil {
		c.Config.BasePath = t.base.String()
		t.base = nil // the SDK's base path is settable: nothing to rewrite
	}
	return &Vonage{c: c}, nil
}

// List reads /account/numbers page by page (index from 1) until count.
func (c *Vonage) List(ctx context.Context) (out []Number, err error) {
	defer recoverSDK(&err)
	for index := int32(1); ; index++ {
		page, resp, err := c.c.List(vonage.NumbersOpts{Size: vonagePage, Index: index})
		if err != nil {
			return nil, vonageErr(err, resp.ErrorCode, resp.ErrorCodeLabel)
		}
		for _, d := range page.Numbers {
			out = append(out, Number{Number: e164(d.Msisdn), ID: d.Msisdn, URL: d.MoHttpUrl, Country: d.Country, Note: vonageMethod})
		}
		if len(page.Numbers) == 0 || len(out) >= int(page.Count) {
			return out, nil
		}
	}
}

// Point posts /number/update with moHttpUrl. The HTTP method of inbound SMS
// is an account setting at Vonage (dashboard, API settings), not a number's.
func (c *Vonage) Point(ctx context.Context, n Number, url string) (_ Action, _ string, err error) {
	defer recoverSDK(&err)
	res, resp, err := c.c.Update(n.Country, n.ID, vonage.NumberUpdateOpts{MoHTTPURL: url})
	if err != nil {
		return "", "", vonageErr(err, resp.ErrorCode, resp.ErrorCodeLabel)
	}
	if code := first(resp.ErrorCode, res.ErrorCode); code != "" && code != "200" {
		return "", "", vonageErr(nil, code, first(resp.ErrorCodeLabel, res.ErrorCodeLabel))
	}
	return Updated, "", nil
}

// vonageErr words an SDK error; a transport error's URL loses its query,
// which carries api_key and api_secret.
func vonageErr(err error, code, label string) error {
	var parts []string
	var ue *url.Error
	if errors.As(err, &ue) {
		u, _, _ := strings.Cut(ue.URL, "?")
		parts = append(parts, ue.Op+" "+u+": "+ue.Err.Error())
	} else if err != nil {
		parts = append(parts, err.Error())
	}
	if code != "" {
		parts = append(parts, "error-code "+code+" "+label)
	}
	return errors.New("vonage: " + strings.Join(parts, ": "))
}

// recoverSDK turns a panic of an SDK call into an error.
func recoverSDK(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("the provider SDK failed (panic: %v)", r)
	}
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

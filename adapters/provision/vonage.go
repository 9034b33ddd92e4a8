package provision

import (
	"context"
	"errors"
	"net/http"

	vonage "github.com/vonage/vonage-go-sdk"
)

// Vonage sets a number's moHttpUrl through vonage-go-sdk's numbers API
// (api_key and api_secret in the query string). The SDK is unmaintained: it
// panics on a transport error, and its errors may quote URLs that carry
// api_secret, so every call goes through the transport's call, which
// recovers and words the failure itself.
type Vonage struct {
	c *vonage.NumbersClient
	t *transport
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
	t.code, t.hint = vonageCode, "api_key and api_secret"
	c := vonage.NewNumbersClient(vonage.CreateAuthFromKeySecret(apiKey, apiSecret))
	c.Config.HTTPClient = client(hc, &vonage.APITransport{APISecret: apiSecret, Transport: t})
	if t.base != nil {
		c.Config.BasePath = t.base.String()
		t.base = nil // the SDK's base path is settable: nothing to rewrite
	}
	return &Vonage{c: c, t: t}, nil
}

// List reads /account/numbers page by page (index from 1) until count.
func (c *Vonage) List(ctx context.Context) (out []Number, err error) {
	for index := int32(1); ; index++ {
		var page vonage.NumberCollection
		if err := c.t.call(func() (err error) {
			page, _, err = c.c.List(vonage.NumbersOpts{Size: vonagePage, Index: index})
			return err
		}); err != nil {
			return nil, err
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
func (c *Vonage) Point(ctx context.Context, n Number, url string) (Action, string, error) {
	var res vonage.NumbersResponse
	var resp vonage.NumbersErrorResponse
	if err := c.t.call(func() (err error) {
		res, resp, err = c.c.Update(n.Country, n.ID, vonage.NumberUpdateOpts{MoHTTPURL: url})
		return err
	}); err != nil {
		return "", "", err
	}
	if code := first(resp.ErrorCode, res.ErrorCode); code != "" && code != "200" {
		// A 200 whose body says it failed: its numeric code only, as for
		// an HTTP error (the label may echo the request).
		msg := "Vonage refused the update"
		if d := digits(code); d != "" {
			msg += " (error-code " + d + ")"
		}
		return "", "", errors.New(msg)
	}
	return Updated, "", nil
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

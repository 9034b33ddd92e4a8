package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Telnyx sends a number's inbound SMS to its messaging profile's
// webhook_url (always POST), through REST v2 with a Bearer API key. Telnyx
// has no Go SDK among mogate's dependencies; this is plain net/http.
type Telnyx struct {
	base     string
	key      string
	hc       *http.Client
	t        *transport
	profiles map[string]telnyxProfile
}

var _ Client = (*Telnyx)(nil)

const noProfile = "the number has no messaging profile: assign one in the Telnyx portal (Numbers, My Numbers, Messaging Profile), then run sync again"

// telnyxPage is the page size asked for (the API's maximum is 250).
const telnyxPage = 250

type telnyxProfile struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	WebhookURL string `json:"webhook_url"`
}

// NewTelnyx returns the client of an account; apiURL "" is Telnyx's public
// API (https://api.telnyx.com).
func NewTelnyx(apiKey, apiURL string, hc *http.Client) (*Telnyx, error) {
	if apiKey == "" {
		return nil, errors.New("api_key is needed for Telnyx's REST API")
	}
	if apiURL == "" {
		apiURL = "https://api.telnyx.com"
	}
	t, err := newTransport(apiURL, next(hc))
	if err != nil {
		return nil, err
	}
	t.base = nil // requests are made on apiURL: nothing to rewrite
	t.code, t.hint = telnyxCode, "api_key"
	return &Telnyx{base: strings.TrimRight(apiURL, "/"), key: apiKey, hc: client(hc, t), t: t, profiles: map[string]telnyxProfile{}}, nil
}

func (c *Telnyx) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.t.call(func() error {
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if resp.StatusCode/100 != 2 {
			return errors.New(resp.Status) // the transport has the words
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
		return nil
	})
}

// List pages through GET /v2/phone_numbers/messaging (page[number],
// page[size]; meta.total_pages) and reads each messaging profile once.
func (c *Telnyx) List(ctx context.Context) ([]Number, error) {
	var out []Number
	for page := 1; ; page++ {
		var res struct {
			Data []struct {
				ID                 string `json:"id"`
				PhoneNumber        string `json:"phone_number"`
				MessagingProfileID string `json:"messaging_profile_id"`
				CountryCode        string `json:"country_code"`
			} `json:"data"`
			Meta struct {
				TotalPages int `json:"total_pages"`
			} `json:"meta"`
		}
		q := url.Values{"page[number]": {fmt.Sprint(page)}, "page[size]": {fmt.Sprint(telnyxPage)}}
		if err := c.do(ctx, http.MethodGet, "/v2/phone_numbers/messaging?"+q.Encode(), nil, &res); err != nil {
			return nil, err
		}
		for _, d := range res.Data {
			n := Number{Number: e164(d.PhoneNumber), ID: d.ID, Country: d.CountryCode}
			if d.MessagingProfileID == "" {
				n.Missing = "no messaging profile"
				n.Blocked = noProfile
			} else {
				p, err := c.profile(ctx, d.MessagingProfileID)
				if err != nil {
					return nil, err
				}
				n.URL = p.WebhookURL
				n.Holder, n.HolderID = fmt.Sprintf("messaging profile %s (%s)", p.ID, p.Name), p.ID
			}
			out = append(out, n)
		}
		if page >= res.Meta.TotalPages || len(res.Data) == 0 {
			return out, nil
		}
	}
}

func (c *Telnyx) profile(ctx context.Context, id string) (telnyxProfile, error) {
	if p, ok := c.profiles[id]; ok {
		return p, nil
	}
	var res struct {
		Data telnyxProfile `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v2/messaging_profiles/"+url.PathEscape(id), nil, &res); err != nil {
		return telnyxProfile{}, err
	}
	if res.Data.ID == "" {
		res.Data.ID = id
	}
	c.profiles[id] = res.Data
	return res.Data, nil
}

// Point sets the messaging profile's webhook_url (PATCH). A number without
// a messaging profile cannot be pointed: messaging profiles carry outbound
// settings (allowed destinations, number pools) mogate does not choose.
func (c *Telnyx) Point(ctx context.Context, n Number, to string) (Action, string, error) {
	if n.HolderID == "" {
		return "", "", errors.New(noProfile)
	}
	body := map[string]string{"webhook_url": to}
	if err := c.do(ctx, http.MethodPatch, "/v2/messaging_profiles/"+url.PathEscape(n.HolderID), body, nil); err != nil {
		return "", "", err
	}
	p := c.profiles[n.HolderID]
	p.WebhookURL = to
	c.profiles[n.HolderID] = p
	return Updated, "", nil
}

package provision

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	plivo "github.com/plivo/plivo-go/v7"
)

// Plivo sends a number's inbound SMS to its application's message_url with
// message_method, through plivo-go (HTTP Basic with auth_id and auth_token).
// A number without an application is attached to an application named
// "mogate", created when the account has none. plivo-go's application calls
// ignore BaseUrl (they force api.plivo.com) and treat an error without a
// body as success, so a transport rewrites the host and records statuses.
type Plivo struct {
	c    *plivo.Client
	t    *transport
	apps map[string]plivo.Application // by id, read once per run
	own  string                       // id of the "mogate" application, once known
}

var _ Client = (*Plivo)(nil)

// AppName is the name of the Plivo application mogate creates.
const AppName = "mogate"

// plivoPage is the page size asked for (the API's maximum is 20).
const plivoPage = 20

// NewPlivo returns the client of an account; apiURL "" is Plivo's public
// API (https://api.plivo.com).
func NewPlivo(authID, authToken, apiURL string, hc *http.Client) (*Plivo, error) {
	if authID == "" || authToken == "" {
		return nil, errors.New("auth_id and auth_token are needed for Plivo's REST API")
	}
	t, err := newTransport(apiURL, next(hc), "api.plivo.com")
	if err != nil {
		return nil, err
	}
	t.hint = "auth_id and auth_token"
	c, err := plivo.NewClient(authID, authToken, &plivo.ClientOptions{HttpClient: client(hc, t)})
	if err != nil {
		return nil, err
	}
	return &Plivo{c: c, t: t, apps: map[string]plivo.Application{}}, nil
}

// call runs one SDK call and fails when any answer was an HTTP error.
func (c *Plivo) call(f func() error) error { return c.t.call(f) }

// List pages through Number/ (limit, offset; meta.next) and reads each
// application the numbers use once.
func (c *Plivo) List(ctx context.Context) ([]Number, error) {
	var out []Number
	for offset := int64(0); ; {
		var page *plivo.NumberListResponse
		if err := c.call(func() (err error) {
			page, err = c.c.Numbers.List(plivo.NumberListParams{Limit: plivoPage, Offset: offset})
			return err
		}); err != nil {
			return nil, err
		}
		for _, n := range page.Objects {
			num := Number{Number: e164(n.Number), ID: n.Number, Country: n.Country}
			if id := appID(n.Application); id == "" {
				num.Missing = "no application"
			} else {
				app, err := c.app(id)
				if err != nil {
					return nil, err
				}
				num.URL, num.Method = app.MessageURL, app.MessageMethod
				num.Holder, num.HolderID = fmt.Sprintf("application %s (%s)", id, app.AppName), id
				if app.AppName == AppName {
					c.own = id
				}
			}
			out = append(out, num)
		}
		offset += int64(len(page.Objects))
		if page.Meta == nil || page.Meta.Next == nil || *page.Meta.Next == "" || len(page.Objects) == 0 {
			return out, nil
		}
	}
}

func (c *Plivo) app(id string) (plivo.Application, error) {
	if a, ok := c.apps[id]; ok {
		return a, nil
	}
	var a *plivo.Application
	if err := c.call(func() (err error) { a, err = c.c.Applications.Get(id); return err }); err != nil {
		return plivo.Application{}, fmt.Errorf("application %s: %w", id, err)
	}
	c.apps[id] = *a
	return *a, nil
}

// Point updates the number's application, or attaches the number to the
// "mogate" application (made when the account has none).
func (c *Plivo) Point(ctx context.Context, n Number, url string) (Action, string, error) {
	if n.HolderID != "" {
		err := c.call(func() error {
			_, err := c.c.Applications.Update(n.HolderID, plivo.ApplicationUpdateParams{MessageURL: url, MessageMethod: http.MethodPost})
			return err
		})
		return Updated, "", err
	}
	action := Updated
	if c.own == "" {
		var list *plivo.ApplicationList
		if err := c.call(func() (err error) {
			list, err = c.c.Applications.List(plivo.ApplicationListParams{AppName: AppName})
			return err
		}); err != nil {
			return "", "", err
		}
		for _, a := range list.Objects {
			if a.AppName == AppName {
				c.own = a.AppID
				break
			}
		}
	}
	if c.own == "" {
		var made *plivo.ApplicationCreateResponseBody
		if err := c.call(func() (err error) {
			made, err = c.c.Applications.Create(plivo.ApplicationCreateParams{AppName: AppName, MessageURL: url, MessageMethod: http.MethodPost})
			return err
		}); err != nil {
			return "", "", err
		}
		c.own, action = made.AppID, CreatedApplication
	} else if a, err := c.app(c.own); err != nil {
		return "", "", err
	} else if a.MessageURL != url || !strings.EqualFold(a.MessageMethod, http.MethodPost) {
		if err := c.call(func() error {
			_, err := c.c.Applications.Update(c.own, plivo.ApplicationUpdateParams{MessageURL: url, MessageMethod: http.MethodPost})
			return err
		}); err != nil {
			return "", "", err
		}
	}
	if err := c.call(func() error {
		_, err := c.c.Numbers.Update(n.ID, plivo.NumberUpdateParams{AppID: c.own})
		return err
	}); err != nil {
		return "", "", err
	}
	c.apps[c.own] = plivo.Application{AppID: c.own, AppName: AppName, MessageURL: url, MessageMethod: http.MethodPost}
	return action, "attached to application " + c.own + " (" + AppName + ")", nil
}

// appID returns the id in an application reference, which the API gives
// as a resource URI ("/v1/Account/MA…/Application/1234/") or a bare id.
func appID(ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" || ref == "null" {
		return ""
	}
	return path.Base(strings.TrimRight(ref, "/"))
}

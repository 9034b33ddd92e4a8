// Package registry builds the provider adapters named in the configuration.
// The list of provider types is written out here, in one place: no init()
// registration, no blank imports.
package registry

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/bandwidth"
	"github.com/mogate/mogate/adapters/bird"
	"github.com/mogate/mogate/adapters/infobip"
	"github.com/mogate/mogate/adapters/plivo"
	"github.com/mogate/mogate/adapters/sinch"
	"github.com/mogate/mogate/adapters/smsgate"
	"github.com/mogate/mogate/adapters/sns"
	"github.com/mogate/mogate/adapters/telnyx"
	"github.com/mogate/mogate/adapters/twilio"
	"github.com/mogate/mogate/adapters/vonage"
	"github.com/mogate/mogate/adapters/vonagemessages"
	"github.com/mogate/mogate/config"
)

// constructors maps a provider type to the function that builds its adapter.
var constructors = map[string]func(p config.Provider, env Env) (adapters.Adapter, error){
	"twilio": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return twilio.New(twilio.Config{Name: p.Name, AuthToken: p.AuthToken.Reveal(), AccountSID: p.AccountSID})
	},
	"vonage": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return vonage.New(vonage.Config{Name: p.Name, SignatureSecret: p.SignatureSecret.Reveal(), SignatureMethod: p.SignatureMethod, APIKey: p.APIKey.Reveal(), Now: env.Now})
	},
	"vonage-messages": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return vonagemessages.New(vonagemessages.Config{Name: p.Name, SignatureSecret: p.SignatureSecret.Reveal(), APIKey: p.APIKey.Reveal(), Now: env.Now})
	},
	"plivo": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return plivo.New(plivo.Config{Name: p.Name, AuthID: p.AuthID, AuthToken: p.AuthToken.Reveal()})
	},
	"telnyx": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return telnyx.New(telnyx.Config{Name: p.Name, PublicKey: p.PublicKey, PrivateKey: p.PrivateKey.Reveal(), Now: env.Now})
	},
	"sinch": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return sinch.New(sinch.Config{Name: p.Name, WebhookSecret: p.WebhookSecret.Reveal(), Now: env.Now})
	},
	"bird": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return bird.New(bird.Config{Name: p.Name, SigningKey: p.SigningKey.Reveal(), Now: env.Now})
	},
	"bandwidth": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return bandwidth.New(bandwidth.Config{Name: p.Name, Username: p.Username, Password: p.Password.Reveal()})
	},
	"infobip": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return infobip.New(infobip.Config{Name: p.Name, Username: p.Username, Password: p.Password.Reveal()})
	},
	"smsgate": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return smsgate.New(smsgate.Config{Name: p.Name, SigningKey: p.SigningKey.Reveal(), Now: env.Now})
	},
	"sns": func(p config.Provider, env Env) (adapters.Adapter, error) {
		return sns.New(sns.Config{Name: p.Name, TopicARNs: p.TopicARNs, HTTP: env.HTTP, PrivateKey: p.PrivateKey.Reveal(), Now: env.Now})
	},
}

// Env is what adapters may use of the outside world.
type Env struct {
	Now  func() time.Time // nil: time.Now
	HTTP *http.Client     // outbound calls (SNS certificates); nil: a default client
}

// Types lists the provider types that have an adapter.
func Types() []string {
	out := make([]string, 0, len(constructors))
	for _, t := range config.ProviderTypes() {
		if constructors[t] != nil {
			out = append(out, t)
		}
	}
	return out
}

// Build returns the adapters of providers keyed by entry name. All errors
// are joined. Build panics on a duplicate name: config validation rules that
// out, so one here is a programming error.
func Build(providers []config.Provider, env Env) (map[string]adapters.Adapter, error) {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.HTTP == nil {
		env.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	out := make(map[string]adapters.Adapter, len(providers))
	var errs []error
	for _, p := range providers {
		if _, dup := out[p.Name]; dup {
			panic("registry: duplicate provider name " + p.Name)
		}
		mk, ok := constructors[p.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("registry: provider %q: type %q has no adapter in this build (available: %v)", p.Name, p.Type, Types()))
			continue
		}
		a, err := mk(p, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("registry: provider %q: %w", p.Name, err))
			continue
		}
		out[p.Name] = a
	}
	return out, errors.Join(errs...)
}

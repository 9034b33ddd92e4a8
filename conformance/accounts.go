package conformance

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/mogate/mogate/adapters/registry"
)

// account names the key of a provider entry that identifies the provider
// account, and the payload field that carries it.
type account struct {
	key string // the entry's config key
	// field is the payload parameter (form, query or top-level JSON) that
	// carries it; "" when the signature carries it (a token claim that
	// Resign sets from the entry) or nothing does.
	field string
	// checked: the target refuses a message of another account.
	checked bool
}

// accounts lists the types whose entries name their account. A message
// replayed for such an entry must carry the entry's own identifier, not
// the one recorded in the fixture.
var accounts = map[string]account{
	"twilio":          {key: "account_sid", field: "AccountSid", checked: true},
	"vonage":          {key: "api_key", field: "api-key", checked: true},
	"vonage-messages": {key: "api_key", checked: true}, // the token's api_key claim
	"plivo":           {key: "auth_id"},                // no inbound payload carries it
	"sns":             {key: "topic_arns", field: "TopicArn", checked: true},
}

// withAccount rewrites the account identifier that the requests of f
// carry to the entry's own (secrets holds the entry's keys); a fixture of
// an entry that names no account is left as recorded.
func withAccount(f Fixture, secrets map[string]string) Fixture {
	a, ok := accounts[f.Provider]
	if !ok || a.field == "" || secrets[a.key] == "" {
		return f
	}
	id := secrets[a.key]
	reqs := make([]Request, 0, len(f.Requests))
	for _, r := range f.Requests {
		if old := recordedField(r, a.field); old != "" && old != id {
			r.Path = replaceParam(r.Path, a.field, old, id)
			if isJSON(r.Body) {
				// Every occurrence: SNS repeats its topic in SubscribeURL.
				r.Body = strings.ReplaceAll(r.Body, jsonInner(old), jsonInner(id))
			} else {
				r.Body = replaceParam(r.Body, a.field, old, id)
			}
		}
		reqs = append(reqs, r)
	}
	f.Requests = reqs
	return f
}

// recordedField is the value of field in r's query, form body or
// top-level JSON object; "" when r does not carry it.
func recordedField(r Request, field string) string {
	if _, q, ok := strings.Cut(r.Path, "?"); ok {
		if v, err := url.ParseQuery(q); err == nil && v.Get(field) != "" {
			return v.Get(field)
		}
	}
	if isJSON(r.Body) {
		var m map[string]any
		if json.Unmarshal([]byte(r.Body), &m) == nil {
			s, _ := m[field].(string)
			return s
		}
		return ""
	}
	if v, err := url.ParseQuery(r.Body); err == nil {
		return v.Get(field)
	}
	return ""
}

// replaceParam replaces field=old by field=id in a query or form body.
func replaceParam(s, field, old, id string) string {
	k := url.QueryEscape(field) + "="
	return strings.ReplaceAll(s, k+url.QueryEscape(old), k+url.QueryEscape(id))
}

// jsonInner is s as a JSON string without its quotes.
func jsonInner(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func isJSON(body string) bool {
	b := strings.TrimSpace(body)
	return strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[")
}

// signingKeys are the keys of a provider type that decide whether the
// target accepts a signature, the account identifier excepted: the
// webhook secrets and their parameters, not the REST credentials.
func signingKeys(typ string) []string {
	t, ok := registry.Lookup(typ)
	if !ok {
		return nil
	}
	var out []string
	for _, k := range t.Keys {
		if !k.REST && k.Name != accounts[typ].key {
			out = append(out, k.Name)
		}
	}
	return out
}

// accountDesc describes the account identifier a refused request carried,
// for a type whose target checks it; "" otherwise. A secret identifier is
// named, never shown.
func accountDesc(typ string, secrets map[string]string) string {
	a, ok := accounts[typ]
	if !ok || !a.checked {
		return ""
	}
	t, _ := registry.Lookup(typ)
	secret := false
	for _, k := range t.Keys {
		if k.Name == a.key {
			secret = k.Secret
		}
	}
	id, carried := secrets[a.key], "the request carries it"
	if a.field != "" {
		carried = "the requests carry it as " + a.field
	}
	switch {
	case id == "" && a.field != "":
		return "the target's entry may check an " + a.key + " that the configuration does not set (the requests carry the fixture's own " + a.field + ")"
	case id == "":
		return ""
	case secret:
		return "its " + a.key + " (" + carried + ")"
	default:
		return "its " + a.key + " " + id + " (" + carried + ")"
	}
}

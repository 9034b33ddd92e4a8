package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// placeholderRef is one {name} of verification.whatsapp_text.
var placeholderRef = regexp.MustCompile(`\{[^{}]*\}`)

// checkChannels checks the keys of the channels beyond SMS:
// verification.whatsapp_text, verification.reject_line_types and
// channels.call.
func (c *Config) checkChannels() []error {
	var errs []error
	at := func(key, format string, args ...any) { errs = append(errs, errAt(c.lineOf(key), key, format, args...)) }
	v := c.Verification
	switch {
	case !strings.Contains(v.WhatsAppText, "{code}"):
		at("verification.whatsapp_text", "must contain {code}, got %q", v.WhatsAppText)
	case len(v.WhatsAppText) > 500:
		at("verification.whatsapp_text", "must be at most 500 bytes, got %d", len(v.WhatsAppText))
	default:
		for _, ref := range placeholderRef.FindAllString(v.WhatsAppText, -1) {
			if ref != "{code}" && ref != "{app}" {
				at("verification.whatsapp_text", "%s is not a placeholder (only {code} and {app} are)", ref)
			}
		}
	}
	for i, lt := range v.RejectLineTypes {
		if !slices.Contains(LineTypes, lt) {
			at(fmt.Sprintf("verification.reject_line_types[%d]", i), "%q is not a line type (%s)%s", lt, strings.Join(LineTypes, ", "), suggest(lt, nameSet(LineTypes)))
		}
	}
	call := c.Channels.Call
	for i, cc := range call.Countries {
		if !isCountry(cc) {
			at(fmt.Sprintf("channels.call.countries[%d]", i), "%q is not an ISO 3166-1 alpha-2 country code%s", cc, countryHint(cc))
		}
	}
	if call.MinAttestation != "A" {
		at("channels.call.min_attestation", "must be A (B and C do not prove that the caller owns the number), got %q", call.MinAttestation)
	}
	return errs
}

// checkNumberChannels checks the channel names of numbers[i] (which
// channels its provider type can receive is CheckProviders' part).
func (c *Config) checkNumberChannels(i int) []error {
	var errs []error
	n := c.Numbers[i]
	key := fmt.Sprintf("numbers[%d].channels", i)
	if n.Channels != nil && len(n.Channels) == 0 {
		errs = append(errs, errAt(c.lineOf(key), key, "must list at least one of %s (leave it out for the provider type's default)", strings.Join(KnownChannels, ", ")))
	}
	for j, ch := range n.Channels {
		k := fmt.Sprintf("%s[%d]", key, j)
		switch {
		case !slices.Contains(KnownChannels, ch):
			errs = append(errs, errAt(c.lineOf(k), k, "%q is not a channel (%s)%s", ch, strings.Join(KnownChannels, ", "), suggest(ch, nameSet(KnownChannels))))
		case slices.Index(n.Channels, ch) < j:
			errs = append(errs, errAt(c.lineOf(k), k, "%s is listed twice", ch))
		}
	}
	return errs
}

// checkNumbers applies the provider types' channel rules to the numbers:
// the default channels of a number that lists none, the channels a type can
// receive, and the phone_number_id of types that route by it.
func (c *Config) checkNumbers(schemas []Schema) []error {
	var errs []error
	types := map[string]Schema{}
	for _, p := range c.Providers {
		if j := slices.IndexFunc(schemas, func(s Schema) bool { return s.Type == p.Type }); j >= 0 {
			types[p.Name] = schemas[j]
		}
	}
	for i := range c.Numbers {
		n := &c.Numbers[i]
		s, ok := types[n.Provider]
		if !ok {
			continue // an unknown provider or type is reported elsewhere
		}
		key := fmt.Sprintf("numbers[%d]", i)
		if n.Channels == nil {
			n.Channels = slices.Clone(s.defaultChannels())
		}
		for j, ch := range n.Channels {
			if k := fmt.Sprintf("%s.channels[%d]", key, j); slices.Contains(KnownChannels, ch) && !slices.Contains(s.channels(), ch) {
				errs = append(errs, errAt(c.lineOf(k), k, "provider %q (type %s) cannot receive %s; it receives %s", n.Provider, s.Type, ch, strings.Join(s.channels(), ", ")))
			}
		}
		switch {
		case s.NumberID && n.PhoneNumberID == "":
			errs = append(errs, errAt(c.lineOf(key), key+".phone_number_id", "required for a number of provider %q (type %s): its webhooks name the number only by this id", n.Provider, s.Type))
		case !s.NumberID && n.PhoneNumberID != "":
			k := key + ".phone_number_id"
			errs = append(errs, errAt(c.lineOf(k), k, "only numbers of a whatsapp provider have one (provider %q is of type %s)", n.Provider, s.Type))
		}
	}
	return errs
}

func (s Schema) channels() []string {
	if len(s.Channels) == 0 {
		return []string{ChannelSMS}
	}
	return s.Channels
}

func (s Schema) defaultChannels() []string {
	if len(s.DefaultChannels) == 0 {
		return []string{ChannelSMS}
	}
	return s.DefaultChannels
}

func nameSet(names []string) map[string]reflect.Type {
	m := make(map[string]reflect.Type, len(names))
	for _, n := range names {
		m[n] = nil
	}
	return m
}

package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// channelNames are the channels a create may ask for, in the order the
// API documents them.
var channelNames = []string{matcher.ChannelSMS, matcher.ChannelWhatsApp, matcher.ChannelCall}

// checkChannels refuses a channels list that is empty, names an unknown
// channel or names one twice (422 invalid_channels naming the field). nil
// (left out, or null) is the default.
func checkChannels(channels []string) error {
	if channels == nil {
		return nil
	}
	if len(channels) == 0 {
		return errorf(http.StatusUnprocessableEntity, "invalid_channels", "channels must list at least one of %s; leave it out for sms", strings.Join(channelNames, ", "))
	}
	for i, ch := range channels {
		switch {
		case !matcher.ValidChannel(ch):
			return errorf(http.StatusUnprocessableEntity, "invalid_channels", "channels[%d]: %q is not a channel (%s)", i, ch, strings.Join(channelNames, ", "))
		case slices.Index(channels, ch) < i:
			return errorf(http.StatusUnprocessableEntity, "invalid_channels", "channels[%d]: %q is listed twice", i, ch)
		}
	}
	return nil
}

// assignRoutes picks the numbers of a new session and sets req.To and
// req.Routes; it returns the number of the first route. Without channels
// (nil) the session has one route, on the number Pool.Assign picks (a
// pinned number on its first channel when it serves no sms). With
// channels, each gets a route in the order asked, on a number that serves
// it: the pinned number (to) for every channel it serves, a number the
// pool picks for the others; a pinned number that serves none of them is
// 422 channel_unavailable. A channel no number serves for this sender, or
// a call route the sender cannot have (callAllowed), is 422
// channel_unavailable naming the channel.
func (s *Server) assignRoutes(p *pool.Pool, req *matcher.CreateRequest, channels []string, pinned, key string) (*pool.Number, error) {
	if channels == nil {
		n, err := p.Assign(req.Number, pinned, req.Country, key)
		if err != nil {
			return nil, err
		}
		req.To = n.Number
		if ch := n.Channels[0]; !n.Serves(matcher.ChannelSMS) {
			if err := s.callAllowed(ch, req.Number); err != nil {
				return nil, err
			}
			req.Routes = []matcher.Route{{Channel: ch, To: n.Number}}
		}
		return n, nil
	}
	var first *pool.Number
	pinServes := false
	for _, ch := range channels {
		if err := s.callAllowed(ch, req.Number); err != nil {
			return nil, err
		}
		pin := ""
		if pinned != "" {
			if pn, ok := p.Lookup(pinned); !ok || pn.Serves(ch) {
				pin = pinned // not in the pool: AssignChannel says so
				pinServes = true
			}
		}
		n, err := p.AssignChannel(ch, req.Number, pin, req.Country, key)
		if errors.Is(err, pool.ErrNoChannel) {
			return nil, withMessage(pool.ErrNoChannel, "no pool number serves channel %s for this sender", ch)
		}
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = n
		}
		req.Routes = append(req.Routes, matcher.Route{Channel: ch, To: n.Number})
	}
	if pinned != "" && !pinServes {
		return nil, withMessage(pool.ErrNoChannel, "to %s serves none of the channels asked for (%s)", pinned, strings.Join(channels, ", "))
	}
	req.To = first.Number
	return first, nil
}

// callAllowed refuses a call route (422 channel_unavailable) without an
// expected sender (a call proves only the caller id it was expected from)
// or for a sender outside channels.call.countries (where STIR/SHAKEN
// attestation exists). Other channels are always allowed here.
func (s *Server) callAllowed(channel, sender string) error {
	if channel != matcher.ChannelCall {
		return nil
	}
	if sender == "" {
		return withMessage(pool.ErrNoChannel, "channel call needs number, the expected caller: capture mode cannot verify by a call")
	}
	region, err := pool.Region(sender)
	if err != nil {
		return err
	}
	countries := s.cfg.Channels.Call.Countries
	if len(countries) == 0 {
		return withMessage(pool.ErrNoChannel, "channel call is not offered here (channels.call.countries is empty)")
	}
	if !slices.Contains(countries, region) {
		return withMessage(pool.ErrNoChannel, "channel call is offered only to senders in %s, not %s", strings.Join(countries, ", "), region)
	}
	return nil
}

// channelsOfService maps Contiguity's service field to channels: sms (or
// left out) and whatsapp to themselves; imessage, which mogate does not
// offer, is 422 channel_unavailable; anything else 400
// unsupported_service.
func channelsOfService(service string) ([]string, error) {
	switch service {
	case "", matcher.ChannelSMS:
		return nil, nil
	case matcher.ChannelWhatsApp:
		return []string{matcher.ChannelWhatsApp}, nil
	case "imessage":
		return nil, withMessage(pool.ErrNoChannel, "channel imessage is not offered by this gateway (sms and whatsapp are)")
	}
	return nil, errorf(http.StatusBadRequest, "unsupported_service", "service must be sms or whatsapp, got %q", service)
}

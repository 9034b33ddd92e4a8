package gateway

import (
	"context"
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
func (s *Server) assignRoutes(ctx context.Context, p *pool.Pool, req *matcher.CreateRequest, channels []string, pinned, key string) (*pool.Number, error) {
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
			if ch == matcher.ChannelCall {
				busy, err := s.callsPending(ctx, p, req.Number)
				if err != nil {
					return nil, err
				}
				if busy != nil && busy(n.Number) {
					return nil, withMessage(pool.ErrBusy, "%s already has a pending call verification for this sender (a call carries no code to tell two apart): cancel it, or let it verify or expire", n.Number)
				}
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
		var busy func(string) bool
		if ch == matcher.ChannelCall {
			var err error
			if busy, err = s.callsPending(ctx, p, req.Number); err != nil {
				return nil, err
			}
		}
		n, err := p.AssignAvoiding(ch, req.Number, pin, req.Country, key, busy)
		if errors.Is(err, pool.ErrBusy) {
			where := "every number that takes calls for this sender"
			if pin != "" {
				where = pin
			}
			return nil, withMessage(pool.ErrBusy, "%s already has a pending call verification for this sender (a call carries no code to tell two apart): cancel it, or let it verify or expire", where)
		}
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

// callsPending reports which pool numbers already carry a pending call
// route of sender, under any API key. A call proves only that sender
// called that number, so two pending call sessions of one caller on one
// number could not be told apart: the second gets another number, or none
// (docs/channels.md). The stores refuse to pick either of two such
// sessions too, should concurrent creates slip past this check.
func (s *Server) callsPending(ctx context.Context, p *pool.Pool, sender string) (func(string) bool, error) {
	var tos []string
	for _, n := range p.Numbers() {
		if n.Serves(matcher.ChannelCall) {
			tos = append(tos, n.Number)
		}
	}
	if len(tos) == 0 {
		return nil, nil
	}
	pending, err := s.store.PendingFor(ctx, sender, tos)
	if err != nil {
		return nil, s.storeErr("pending calls", err)
	}
	busy := map[string]bool{}
	for _, v := range pending {
		for _, r := range v.Routes {
			if r.Channel == matcher.ChannelCall && v.Status == matcher.Pending && v.Number == sender {
				busy[r.To] = true
			}
		}
	}
	return func(n string) bool { return busy[n] }, nil
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

// channelsOfService maps Contiguity's service field to channels: left out
// to the default (nil), sms and whatsapp to themselves; imessage, which mogate does not
// offer, is 422 channel_unavailable; anything else 400
// unsupported_service.
func channelsOfService(service string) ([]string, error) {
	switch service {
	case "":
		return nil, nil
	case matcher.ChannelSMS:
		// Named: an sms route or 422, never a pinned WhatsApp number.
		return []string{matcher.ChannelSMS}, nil
	case matcher.ChannelWhatsApp:
		return []string{matcher.ChannelWhatsApp}, nil
	case "imessage":
		return nil, withMessage(pool.ErrNoChannel, "channel imessage is not offered by this gateway (sms and whatsapp are)")
	}
	return nil, errorf(http.StatusBadRequest, "unsupported_service", "service must be sms or whatsapp, got %q", service)
}

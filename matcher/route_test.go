package matcher

import (
	"errors"
	"slices"
	"testing"
)

func TestReasonLineTypeRejected(t *testing.T) {
	if got := Reason(Failed, ReasonLineTypeRejected); got != ReasonLineTypeRejected {
		t.Fatalf("Reason(failed, line_type_rejected) = %q", got)
	}
	if got := Reason(Cancelled, ReasonLineTypeRejected); got != ReasonCancelledByAPI {
		t.Fatalf("Reason(cancelled, line_type_rejected) = %q", got)
	}
}

func TestCreateRoutes(t *testing.T) {
	const a, b = "+14155550100", "+14155550101"
	got, err := CreateRoutes(CreateRequest{To: a})
	if err != nil || !slices.Equal(got, []Route{{ChannelSMS, a}}) {
		t.Fatalf("no routes = %v %v", got, err)
	}
	routes := []Route{{ChannelWhatsApp, a}, {ChannelSMS, b}, {ChannelCall, a}}
	got, err = CreateRoutes(CreateRequest{To: a, Routes: routes})
	if err != nil || !slices.Equal(got, routes) {
		t.Fatalf("routes = %v %v", got, err)
	}
	if n := RouteNumbers(got); !slices.Equal(n, []string{a, b}) {
		t.Fatalf("RouteNumbers = %v", n)
	}
	for name, rs := range map[string][]Route{
		"first not To":    {{ChannelSMS, b}},
		"unknown channel": {{ChannelSMS, a}, {"imessage", b}},
		"no number":       {{ChannelSMS, a}, {ChannelWhatsApp, ""}},
		"twice":           {{ChannelSMS, a}, {ChannelSMS, a}},
	} {
		if _, err := CreateRoutes(CreateRequest{To: a, Routes: rs}); !errors.Is(err, ErrInvalidRoutes) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

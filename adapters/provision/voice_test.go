package provision_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters/provision"
	pt "github.com/mogate/mogate/adapters/provision/provisiontest"
)

// TestSyncVoice: a Twilio number whose entry lists call also gets its
// VoiceUrl (POST) pointed at the entry's URL, detaching a voice
// application; one on a SIP trunk is refused; a number without call keeps
// today's behaviour (its voice URL untouched); the list, the dry run and
// the second run write nothing.
func TestSyncVoice(t *testing.T) {
	const (
		smsOnly  = "+14155550110" // SMS in sync, calls elsewhere, no call channel
		callsOff = "+14155550111" // SMS in sync, calls elsewhere
		inSync   = "+14155550112" // both in sync
		both     = "+14155550113" // SMS elsewhere, calls to a voice application
		trunk    = "+14155550114" // SMS in sync, calls to a SIP trunk
	)
	f := pt.Twilio("AC0123456789abcdef", "tok0123456789secret",
		pt.Num{Number: smsOnly, URL: want, Method: "POST", VoiceURL: other, VoiceMethod: "POST"},
		pt.Num{Number: callsOff, URL: want, Method: "POST", VoiceURL: other, VoiceMethod: "GET"},
		pt.Num{Number: inSync, URL: want, Method: "POST", VoiceURL: want, VoiceMethod: "POST"},
		pt.Num{Number: both, URL: other, Method: "POST", VoiceApp: "AP77"},
		pt.Num{Number: trunk, URL: want, Method: "POST", Trunk: "TK1"},
	)
	defer f.Close()
	cl, err := provision.NewTwilio("AC0123456789abcdef", "tok0123456789secret", f.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	call := []string{"sms", "call"}
	entries := []provision.Entry{{
		Name: "acct", Type: "twilio", Client: cl, URL: want, Secrets: []string{"tok0123456789secret"},
		Numbers:  []string{smsOnly, callsOff, inSync, both, trunk},
		Channels: map[string][]string{smsOnly: {"sms"}, callsOff: call, inSync: call, both: call, trunk: call},
	}}
	ctx := context.Background()
	actions(t, provision.Inspect(ctx, entries), map[string]string{
		smsOnly: "in sync", callsOff: "points elsewhere", inSync: "in sync", both: "points elsewhere", trunk: "points elsewhere",
	})
	dry := provision.Sync(ctx, entries, true)
	actions(t, dry, map[string]string{
		smsOnly: "unchanged", callsOff: "would update", inSync: "unchanged", both: "would update", trunk: "failed: its calls go to SIP trunk TK1",
	})
	for _, r := range dry {
		if r.Number == callsOff && (r.OK || !strings.Contains(r.Note, "calls would go from "+other+" (GET) to "+want+" (POST)")) {
			t.Errorf("dry run %s: %+v", r.Number, r)
		}
	}
	if w := f.Writes(); len(w) != 0 {
		t.Fatalf("list and dry run wrote: %v", w)
	}
	rows := provision.Sync(ctx, entries, false)
	actions(t, rows, map[string]string{
		smsOnly: "unchanged", callsOff: "updated", inSync: "unchanged", both: "updated", trunk: "failed: its calls go to SIP trunk TK1",
	})
	base := "POST /2010-04-01/Accounts/AC0123456789abcdef/IncomingPhoneNumbers/"
	wantWrites := []string{
		base + "PN00000000000000000000000000000001.json VoiceMethod=POST VoiceUrl=" + want,
		base + "PN00000000000000000000000000000003.json SmsMethod=POST SmsUrl=" + want,
		base + "PN00000000000000000000000000000003.json VoiceApplicationSid= VoiceMethod=POST VoiceUrl=" + want,
	}
	if got := f.Writes(); !slices.Equal(got, wantWrites) {
		t.Errorf("writes:\n got %q\nwant %q", got, wantWrites)
	}
	for _, r := range rows {
		if r.Number == both && (!r.OK || !strings.Contains(r.Note, "detached from voice application AP77")) {
			t.Errorf("%s: %+v", r.Number, r)
		}
		if r.Number == trunk && r.OK {
			t.Errorf("a number whose calls cannot reach mogate is OK: %+v", r)
		}
	}
	if n := f.Number(smsOnly); n.VoiceURL != other {
		t.Errorf("a number without the call channel had its voice URL changed to %q", n.VoiceURL)
	}
	n := len(f.Writes())
	actions(t, provision.Sync(ctx, entries, false), map[string]string{
		smsOnly: "unchanged", callsOff: "unchanged", inSync: "unchanged", both: "unchanged", trunk: "failed",
	})
	if w := f.Writes(); len(w) != n {
		t.Errorf("the second run wrote: %v", w[n:])
	}
}

// TestSyncVoiceWithoutVoiceAPI: a number that lists call on a type whose
// client cannot point calls is a failed row, not a silent success.
func TestSyncVoiceWithoutVoiceAPI(t *testing.T) {
	f := pt.Telnyx("KEYtelnyx0123", []pt.Num{{Number: b, App: "200"}}, pt.App{ID: "200", Name: "otp", URL: want})
	defer f.Close()
	cl, err := provision.NewTelnyx("KEYtelnyx0123", f.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	e := []provision.Entry{{Name: "acct", Type: "telnyx", Client: cl, URL: want, Numbers: []string{b}, Channels: map[string][]string{b: {"sms", "call"}}}}
	for _, rows := range [][]provision.Row{provision.Inspect(context.Background(), e), provision.Sync(context.Background(), e, false)} {
		actions(t, rows, map[string]string{b: "failed: mogate cannot point a telnyx number's calls"})
	}
}

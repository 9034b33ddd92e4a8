package adapterstest

import "testing"

func TestFixtureBodies(t *testing.T) {
	for _, p := range []string{"twilio", "vonage", "vonage-messages", "plivo", "telnyx", "sinch", "bird", "bandwidth", "infobip", "sns", "smsgate"} {
		bodies := FixtureBodies(p)
		if len(bodies) < 6 {
			t.Errorf("%s: %d fixture bodies", p, len(bodies))
		}
		for _, b := range bodies {
			if placeholder.MatchString(b) {
				t.Errorf("%s: placeholder left in %q", p, b)
			}
		}
	}
}

package outbox

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	o := &Outbox{opt: Tuning{}.WithDefaults()}
	if d := o.backoff(1); d < 800*time.Millisecond || d > 1200*time.Millisecond {
		t.Fatalf("first retry after %v, want about 1s (under 5s)", d)
	}
	if d := o.backoff(4); d < 6400*time.Millisecond || d > 9600*time.Millisecond {
		t.Fatalf("4th retry after %v", d)
	}
	if d := o.backoff(40); d > 72*time.Minute {
		t.Fatalf("capped retry after %v", d)
	}
}

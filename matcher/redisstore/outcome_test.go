package redisstore

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mogate/mogate/matcher"
)

// outcomeSeeds are records as library.lua writes them (cjson orders a
// table's fields as it likes), then records it never writes.
var outcomeSeeds = []string{
	`{"k":1,"sid":"vrf_x","key":"bench","ct":false}`,
	`{"sid":"vrf_x","ct":true,"k":3,"key":"k"}`,
	`{"k":0}`, `{"k":0,"own":2}`, `{"cr":true,"k":0,"ct":true}`, `{"k":4}`,
	// Not cjson's: json.Unmarshal decides.
	`{}`, `{"k":null}`, `{"k":256}`, `{"k":-1}`, `{"k":01}`, `{"k":1.0}`, `{"k":1e0}`, `{"K":1}`,
	`{"k":1,"sid":"a\/b"}`, `{"k":1,"sid":"é"}`, `{"k":1,"sid":1}`, `{"k":1,"ct":1}`, `{"k":1,"x":2}`,
	`{ "k":1}`, `{"k":1}x`, `{"k":1,}`, `{"k":1,"k":2}`, `{"k":1,"own":-0}`, `{"k":-0}`, `{"k":1,"own":-}`,
	`{"k":1,"own":1234567890}`, `{"k":1,"ct":truex}`, `{"k"`, `{"k":`, `{"k":1`, `{`, ``, `[]`, `null`,
}

// checkScanOutcome: what scanOutcome reads, json.Unmarshal reads the same,
// without an error.
func checkScanOutcome(t *testing.T, j string) {
	o, ok := scanOutcome(j)
	if !ok {
		return
	}
	var want outcome
	if err := json.Unmarshal([]byte(j), &want); err != nil {
		t.Fatalf("scanOutcome(%q) = %+v, json.Unmarshal fails: %v", j, o, err)
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("scanOutcome(%q) = %+v, json.Unmarshal %+v", j, o, want)
	}
	// The kind as plain JSON reads it, into a pointer.
	var ref struct {
		K *matcher.OutcomeKind `json:"k"`
	}
	if err := json.Unmarshal([]byte(j), &ref); err != nil || (ref.K != nil) != o.Kind.ok || ref.K != nil && *ref.K != o.Kind.v {
		t.Fatalf("scanOutcome(%q) kind %+v, json.Unmarshal into a pointer %v (%v)", j, o.Kind, ref.K, err)
	}
}

// TestScanOutcome: the scanner agrees with json.Unmarshal, and reads
// library.lua's records itself.
func TestScanOutcome(t *testing.T) {
	for _, j := range outcomeSeeds {
		checkScanOutcome(t, j)
	}
	for _, j := range outcomeSeeds[:6] {
		if _, ok := scanOutcome(j); !ok {
			t.Errorf("scanOutcome(%q) leaves a record of library.lua's to json.Unmarshal", j)
		}
	}
}

func FuzzScanOutcome(f *testing.F) {
	for _, j := range outcomeSeeds {
		f.Add(j)
	}
	f.Fuzz(checkScanOutcome)
}

// TestDecodeOutcomeNoAllocation: a verification's outcome record decodes
// without an allocation (its strings are slices of the reply).
func TestDecodeOutcomeNoAllocation(t *testing.T) {
	j := `{"k":1,"sid":"vrf_3kz9Qx2m","key":"bench","ct":false}`
	var o outcome
	var err error
	if n := testing.AllocsPerRun(100, func() { o, err = decodeOutcomeRecord(j) }); n != 0 {
		t.Errorf("decodeOutcomeRecord: %.0f allocations, want 0", n)
	}
	if err != nil || !o.Kind.ok || o.Kind.v != 1 || o.SessionID != "vrf_3kz9Qx2m" || o.Key != "bench" {
		t.Errorf("decodeOutcomeRecord = %+v, %v", o, err)
	}
}

package memstore

import "testing"

// TestTakeDigits: each byte value below 250 makes the digit of its value
// modulo 10, so that every digit comes from exactly 25 of the 256 values;
// the 6 others are skipped, and a source's bytes past a full code are
// left.
func TestTakeDigits(t *testing.T) {
	var counts [10]int
	skipped := 0
	for v := range 256 {
		var d [1]byte
		switch n := takeDigits(d[:], []byte{byte(v)}); {
		case n == 0:
			skipped++
			if v < 250 {
				t.Errorf("byte %d skipped", v)
			}
		case n == 1 && d[0] == '0'+byte(v%10) && v < 250:
			counts[v%10]++
		default:
			t.Errorf("byte %d: %d digits %q", v, n, d[:n])
		}
	}
	if counts != [10]int{25, 25, 25, 25, 25, 25, 25, 25, 25, 25} || skipped != 6 {
		t.Errorf("digits per value %v, %d skipped; want 25 each, 6 skipped", counts, skipped)
	}
	for _, tc := range []struct {
		src  []byte
		size int
		want string
	}{
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 3, "729"},
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 6, "7293"},
		{[]byte{0, 252, 253, 254, 9, 10, 99}, 2, "09"},
		{[]byte{250, 251, 252, 253, 254, 255}, 4, ""},
		{nil, 6, ""},
	} {
		dst := make([]byte, tc.size)
		if n := takeDigits(dst, tc.src); string(dst[:n]) != tc.want {
			t.Errorf("takeDigits(%d, %v) = %q, want %q", tc.size, tc.src, dst[:n], tc.want)
		}
	}
}

// TestRandomDigits: a generated code has the length asked, in decimal
// digits.
func TestRandomDigits(t *testing.T) {
	for _, n := range []int{1, 6, 8, 20, 200} {
		for range 100 {
			code := randomDigits(n)
			if len(code) != n {
				t.Fatalf("randomDigits(%d) = %q", n, code)
			}
			for i := range len(code) {
				if code[i] < '0' || code[i] > '9' {
					t.Fatalf("randomDigits(%d) = %q", n, code)
				}
			}
		}
	}
}

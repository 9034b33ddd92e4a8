package conformance

import (
	"embed"
	"io/fs"
)

//go:embed testdata
var testdata embed.FS

// Fixtures returns the fixtures built into the binary.
func Fixtures() ([]Fixture, error) {
	sub, err := fs.Sub(testdata, "testdata")
	if err != nil {
		return nil, err
	}
	return Load(sub)
}

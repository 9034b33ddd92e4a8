package client_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEClientExample: the README's Go client code is ExampleNew's
// body, which go test compiles.
func TestREADMEClientExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("example_client_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(ex), "func ExampleNew() {\n")
	body, _, _ = strings.Cut(body, "\n}\n")
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if want := "```go\n" + strings.Join(lines, "\n") + "\n```"; !ok || !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks ExampleNew's body:\n%s", want)
	}
}

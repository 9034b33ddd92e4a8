package conformance

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/mogate/mogate/adapters/registry"
)

// signingOnly is the fixture secret that only the provider holds (telnyx's
// private key): the runner signs with it, the target never sees it.
const signingOnly = "private_key"

// APIKey is the API key of the conformance configuration.
const APIKey = "conformance-api-key-000000000001" //nolint:gosec // G101: a fixed key of the test configuration

// Config returns the mogate.yaml a target must run with: one provider
// entry per type (named after it) with the fixtures' secrets, every
// receiving number the fixtures use, the runner's API key and no limits.
func Config(fixtures []Fixture, listen, publicURL, dataDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# mogate conformance configuration: run the target with it, then\n# mogate conformance run --target <its URL>\n")
	fmt.Fprintf(&b, "listen: %s\npublic_url: %s\ndata_dir: %s\n", listen, publicURL, dataDir)
	fmt.Fprintf(&b, "api_keys:\n  - {name: conformance, key: %s}\n", APIKey)
	b.WriteString("providers:\n")
	numbers := map[string]string{}
	ids := map[string]string{}               // number -> phone_number_id
	channels := map[string]map[string]bool{} // number -> channels beyond the type's default
	done := map[string]bool{}
	for _, f := range fixtures {
		for id, n := range f.NumberIDs {
			numbers[n], ids[n] = f.Provider, id
		}
		for _, e := range f.Expect.Events {
			if e.To != "" {
				numbers[e.To] = f.Provider
			}
			if n := receiver(f, e); n != "" && e.Channel != "" {
				if channels[n] == nil {
					channels[n] = map[string]bool{}
				}
				channels[n][e.Channel] = true
			}
		}
		for _, n := range f.Numbers {
			numbers[n] = f.Provider
		}
		if done[f.Provider] {
			continue
		}
		done[f.Provider] = true
		keys := make([]string, 0, len(f.Secrets))
		for k := range f.Secrets {
			if k != signingOnly {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  - name: %s\n    type: %s\n", f.Provider, f.Provider)
		for _, k := range keys {
			if k == "topic_arns" {
				fmt.Fprintf(&b, "    %s: [%q]\n", k, f.Secrets[k])
				continue
			}
			fmt.Fprintf(&b, "    %s: %q\n", k, f.Secrets[k])
		}
	}
	b.WriteString("numbers:\n")
	nums := make([]string, 0, len(numbers))
	for n := range numbers {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		extra := ""
		if id := ids[n]; id != "" {
			extra += fmt.Sprintf(", phone_number_id: %q", id)
		}
		// Channels beyond sms are written out: the type's default and those
		// of the events (a configuration read without the provider table
		// has no defaults).
		typ, _ := registry.Lookup(numbers[n])
		chans := slices.Clone(typ.DefaultChannels)
		for _, ch := range slices.Sorted(maps.Keys(channels[n])) {
			if !slices.Contains(chans, ch) {
				chans = append(chans, ch)
			}
		}
		if len(chans) > 0 && !slices.Equal(chans, []string{"sms"}) {
			extra += ", channels: [" + strings.Join(chans, ", ") + "]"
		}
		fmt.Fprintf(&b, "  - {number: %q, provider: %s, countries: [\"*\"]%s}\n", n, numbers[n], extra)
	}
	b.WriteString("limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 0, unmatched_per_sender_per_hour: 0}\n")
	return b.String()
}

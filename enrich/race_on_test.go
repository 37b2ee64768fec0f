//go:build race

package enrich

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// code that pools (regexp's matchers) allocates under it; the
// allocation tests run without it (make test runs them again so).
const raceEnabled = true

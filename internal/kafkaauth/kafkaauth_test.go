package kafkaauth

import "testing"

func TestSASL(t *testing.T) {
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		if opt, ok := SASL(m, "u", "p"); !ok || opt == nil {
			t.Errorf("SASL(%q) = %v, %v; want an option", m, opt, ok)
		}
	}
	for _, m := range []string{"", "plain", "GSSAPI", "OAUTHBEARER"} {
		if _, ok := SASL(m, "u", "p"); ok {
			t.Errorf("SASL(%q) accepted an unsupported mechanism", m)
		}
	}
}

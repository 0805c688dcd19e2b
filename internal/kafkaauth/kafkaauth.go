// Package kafkaauth turns a SASL mechanism name and credentials into the
// franz-go client option, for every Kafka client Sluice builds: the
// appliance (ingest, from kafka.sasl) and the load generator (loadgen, from
// its flags). Callers validate and word their own errors; this package
// only knows the mechanisms.
package kafkaauth

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL returns the client option for mechanism (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512, upper case), and false for any other name.
func SASL(mechanism, user, pass string) (kgo.Opt, bool) {
	switch mechanism {
	case "PLAIN":
		return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()), true
	case "SCRAM-SHA-256":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()), true
	case "SCRAM-SHA-512":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), true
	}
	return nil, false
}

package devenv

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BrokerOptions configures StartBroker.
type BrokerOptions struct {
	// Listen is host:port; default 127.0.0.1:0 (a free port). kfake's
	// advertised address is always 127.0.0.1, so a host other than loopback
	// only changes where it binds.
	Listen string
	// DataDir persists topics, offsets, groups and transactions; empty keeps
	// everything in memory.
	DataDir string
	// SyncWrites fsyncs every produced batch (with DataDir).
	SyncWrites bool
	// Partitions is the partition count of auto-created topics; default 4.
	Partitions int
	// Topics are created up front with Partitions partitions.
	Topics []string
	// TLS, when set, makes the broker speak TLS only.
	TLS *tls.Config
	// SASL users: each is {mechanism, user, password}. Non-empty enables SASL.
	SASL [][3]string
	// Extra kfake options.
	Extra []kfake.Opt
	// Logf, when set, reports the group members the broker removes
	// because kfake would keep them for ever (see reaper.go).
	Logf func(format string, args ...any)

	// rawFetch serves read_committed fetches as kfake does, without
	// listedAborts (for the tests that watch kfake's own behaviour).
	rawFetch bool
}

// Broker is a running embedded Kafka-protocol broker.
type Broker struct {
	Cluster *kfake.Cluster
	reaper  *reaper
}

// Addrs returns the seed broker addresses.
func (b *Broker) Addrs() []string { return b.Cluster.ListenAddrs() }

// Close stops the broker, flushing persisted state when it has a DataDir.
func (b *Broker) Close() {
	b.reaper.close() // before the cluster: it reads the cluster's groups
	b.Cluster.Close()
}

// StartBroker starts a single-node kfake cluster.
func StartBroker(o BrokerOptions) (*Broker, error) {
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		// Tests and chaos runs use short session timeouts for fast failover.
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
	}
	if o.Listen != "" {
		host, portStr, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("cannot parse broker listen address %q (want host:port): %w", o.Listen, err)
		}
		var port int
		if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil {
			return nil, fmt.Errorf("cannot parse port in broker listen address %q: %w", o.Listen, err)
		}
		opts = append(opts, kfake.Ports(port))
		if host != "" && host != "127.0.0.1" {
			opts = append(opts, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
				_, p, _ := net.SplitHostPort(addr)
				return net.Listen(network, net.JoinHostPort(host, p))
			}))
		}
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
		if o.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	if o.TLS != nil {
		opts = append(opts, kfake.TLS(o.TLS))
	}
	if len(o.SASL) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for i, u := range o.SASL {
			if i == 0 {
				opts = append(opts, kfake.Superuser(u[0], u[1], u[2]))
			} else {
				opts = append(opts, kfake.User(u[0], u[1], u[2]))
			}
		}
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded Kafka broker: %w", err)
	}
	if !o.rawFetch {
		c.ControlKey(int16(kmsg.Fetch), listedAborts)
	}
	// Members whose connection died while they joined are removed after
	// their session and rebalance timeouts (kfake would keep them).
	addrs := c.ListenAddrs()
	return &Broker{Cluster: c, reaper: startReaper(c, addrs[0], o)}, nil
}

// listedAborts lifts the total size limit of read_committed fetches, which
// each partition's limit still bounds, and lets kfake serve them. kfake
// (the module version in go.mod) leaves its loop over a fetch's partitions
// as soon as the response reaches the request's MaxBytes, and skips the
// lookup of aborted transactions for the partition it was filling: that
// partition's batches go out without them, and a read_committed consumer
// (franz-go, librdkafka) takes the aborted records among them for
// committed ones. A fetch cut by a partition's limit lists them. Apache
// Kafka lists them however a fetch is cut. The responses are then as
// large as the partitions' limits add up to, more than MaxBytes when
// those add up to more (TestFetchCutBySizeListsAbortedTxns).
func listedAborts(r kmsg.Request) (kmsg.Response, error, bool) {
	if req, ok := r.(*kmsg.FetchRequest); ok && req.IsolationLevel == 1 {
		req.MaxBytes = math.MaxInt32
	}
	return nil, nil, false
}

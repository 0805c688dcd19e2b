package devenv

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka protocol over a plain TCP connection, so that a
// test decides exactly when a request is on the wire and when the
// connection dies (a kgo client would retry, or leave the group on close).
type rawConn struct {
	c    *net.TCPConn
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &rawConn{c: c.(*net.TCPConn)}
}

// send writes req (a non-flexible version) with a request header v1.
func (r *rawConn) send(req kmsg.Request) error {
	if req.IsFlexible() {
		return fmt.Errorf("rawConn speaks non-flexible versions only (%T v%d)", req, req.GetVersion())
	}
	r.corr++
	b := make([]byte, 4, 256)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len("raw")))
	b = append(b, "raw"...)
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(b)
	return err
}

// recv reads the next response (non-flexible) into resp.
func (r *rawConn) recv(resp kmsg.Response) error {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.c, body); err != nil {
		return err
	}
	return resp.ReadFrom(body[4:]) // after the correlation id
}

// kill drops the connection abruptly (RST), as a killed process does.
func (r *rawConn) kill() {
	_ = r.c.SetLinger(0)
	_ = r.c.Close()
}

// TestDeadJoinerIsReaped: a member whose connection dies while its
// JoinGroup waits for the rebalance must not stay in the group for ever.
// kfake (the module version in go.mod) stops a member's pending timer at
// its second JoinGroup and arms its session timer only when the join
// response is delivered. On a dead connection the delivery fails about one
// time in two (kfake's reply picks at random between the connection's
// buffered response channel and its closed done channel); such a member,
// held by no process, keeps its partitions while the group stays Stable,
// until some other member's join or leave starts a rebalance (which drops
// members not waiting in a join). One dead member per round, rounds in a
// row: without the reaper (reaper.go) a round leaves its member behind and
// the test fails in all but about 1 run in 128; with it, the member is gone
// after its session plus rebalance timeout and one more session timeout
// (reaper.go), and the live consumer owns, and consumes from, every
// partition again.
func TestDeadJoinerIsReaped(t *testing.T) {
	const (
		topic      = "t"
		group      = "g"
		partitions = 8
		rounds     = 7
	)
	var reaped atomic.Int32
	b, err := StartBroker(BrokerOptions{Topics: []string{topic}, Partitions: partitions, Logf: func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if strings.HasPrefix(line, "broker: removed member") {
			reaped.Add(1)
		}
		t.Log(line)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The live consumer. Its heartbeat interval leaves the dead members'
	// joins time to be parked before it rejoins and completes the
	// rebalance.
	var (
		mu    sync.Mutex
		owned = map[int32]bool{}
		seen  = map[int32]bool{} // partitions consumed from since reset
	)
	track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m[topic] {
				if add {
					owned[p] = true
				} else {
					delete(owned, p)
				}
			}
		}
	}
	live, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.SessionTimeout(3*time.Second), kgo.HeartbeatInterval(500*time.Millisecond), kgo.RebalanceTimeout(3*time.Second),
		kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)), kgo.OnPartitionsLost(track(false)))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for ctx.Err() == nil {
			fs := live.PollFetches(ctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { seen[r.Partition] = true })
			mu.Unlock()
		}
	}()
	defer func() { cancel(); <-polled }()
	ownsAll := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(owned) == partitions
	}
	waitUntil(t, 20*time.Second, "the live consumer to own every partition", ownsAll)
	liveInfo, err := b.Cluster.WaitGroupStable(ctx, group, 1)
	if err != nil {
		t.Fatalf("the group did not settle with its live consumer: %v", err)
	}
	liveID := liveInfo.Members[0].MemberID

	// A dead member per round: it takes a member id (first JoinGroup,
	// answered MEMBER_ID_REQUIRED), joins with it and dies while that
	// join waits for the live consumer to rejoin.
	join := func(memberID string) *kmsg.JoinGroupRequest {
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{topic}
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		p.Metadata = meta.AppendTo(nil)
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(5)
		req.Group = group
		req.SessionTimeoutMillis = 1000
		req.RebalanceTimeoutMillis = 1000
		req.MemberID = memberID
		req.ProtocolType = "consumer"
		req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
		return req
	}
	for round := 1; round <= rounds; round++ {
		c := dialRaw(t, addr)
		if err := c.send(join("")); err != nil {
			t.Fatal(err)
		}
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(5)
		if err := c.recv(resp); err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != kerr.MemberIDRequired || resp.MemberID == "" {
			t.Fatalf("round %d: first JoinGroup: %v, member id %q (want MEMBER_ID_REQUIRED and an id)", round, err, resp.MemberID)
		}
		deadID := resp.MemberID
		if err := c.send(join(deadID)); err != nil {
			t.Fatal(err)
		}
		// The join is parked once the group lists the member while it
		// waits for the live consumer.
		g, err := b.Cluster.WaitGroupInfo(ctx, group, func(g *kfake.GroupInfo) bool { return g != nil && len(g.Members) == 2 })
		if err != nil {
			t.Fatalf("round %d: the dead member's join was not parked: %v", round, err)
		}
		if g.State != "PreparingRebalance" {
			t.Logf("round %d: the rebalance completed before the connection died (state %s)", round, g.State)
		}
		c.kill()
		killed := time.Now()

		// Within a generous deadline: the group holds the live
		// consumer alone, Stable, and it owns every partition.
		var last string
		waitUntil(t, 15*time.Second, fmt.Sprintf("round %d: the dead member to leave the group", round), func() bool {
			g := b.Cluster.GroupInfo(group)
			if g == nil {
				last = "the group is gone"
				return false
			}
			var members []string
			for _, m := range g.Members {
				members = append(members, fmt.Sprintf("%s (%d partitions)", m.MemberID, m.NumAssigned()))
			}
			last = fmt.Sprintf("state %s, %d members: %v", g.State, len(g.Members), members)
			return g.State == "Stable" && len(g.Members) == 1 && g.Members[0].MemberID == liveID && ownsAll()
		}, func() string { return last })
		t.Logf("round %d: group settled %v after the kill", round, time.Since(killed).Round(10*time.Millisecond))
	}
	t.Logf("%d of %d dead members were removed by the reaper, the others by kfake", reaped.Load(), rounds)

	// And it consumes from every partition.
	mu.Lock()
	clear(seen)
	mu.Unlock()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for p := int32(0); p < partitions; p++ {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("after")}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "the live consumer to consume from every partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == partitions
	})
}

// waitUntil polls cond every 50 ms until it holds, failing t after d with
// what, and with the detail of the last poll if given.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s", d, what)
			for _, f := range detail {
				msg += ": " + f()
			}
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package devenv

import (
	"context"
	"crypto/tls"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// reaper removes classic consumer-group members that kfake keeps although
// nothing runs them.
//
// kfake (the module version in go.mod, groups.go) stops a member's
// pending-member timer at its second JoinGroup (addMemberAndRebalance →
// stopPending) and arms its session timer only when a response to a join
// or sync is delivered (group.reply calls updateHeartbeat only when
// creq.reply succeeds). A member whose connection died while its JoinGroup
// waited for the rebalance has its response dropped about one time in two
// (the reply picks at random between the connection's buffered response
// channel and its closed done channel), and then no timer ever removes it:
// the group goes Stable with a member no process runs, holding its
// partitions until some other member's join or leave starts a rebalance.
// Apache Kafka schedules every member's heartbeat expiry when the join
// completes, answered or not.
//
// The reaper watches the group requests through kfake's control hooks (it
// only observes them: kfake handles every one as before) and keeps, per
// group and member id, when the member was last heard from and its session
// and rebalance timeouts (from its JoinGroup). A member silent for longer
// than both together, the longest Apache Kafka lets a member be silent
// (a join waits at most its rebalance timeout, then the member has its
// session timeout), is looked up in the group. While the group
// rebalances, kfake's own rebalance and pending-sync timers bound the
// member's wait, so it is looked at again a session timeout later. If the
// group is Stable and lists it, and is still Stable at the same generation
// and lists it a session timeout later, with no request from the member in
// between, the reaper removes it with a LeaveGroup (v3+, by member id)
// sent through a client of its own to the broker. A member that
// heartbeats, commits, joins or syncs is never due: kfake expires it
// itself, at its session timeout, long before the reaper would.
//
// Members are tracked from their first JoinGroup that carries a member id:
// a dynamic member's second JoinGroup, a static member's rejoin. A static
// member killed during its very first join (member id empty) is not
// tracked; it is replaced when its instance id joins again. KIP-848
// (ConsumerGroupHeartbeat) and share groups have timers of their own in
// kfake and are not watched. With TLS
// the reaper connects without verifying the broker's certificate (it
// dials its own listener) and cannot connect when the listener requires a
// client certificate; with SASL it logs in as the first (super)user.
type reaper struct {
	c    *kfake.Cluster
	opts []kgo.Opt // how the reaper's client reaches the broker
	logf func(format string, args ...any)

	mu      sync.Mutex
	members map[memberKey]*memberSeen

	wake   chan struct{} // a member with an earlier deadline may be tracked
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	cl     *kgo.Client // the reaper goroutine's own
}

type memberKey struct{ group, member string }

type memberSeen struct {
	due       time.Time // when the member is looked up next
	session   time.Duration
	rebalance time.Duration
	// confirming: at the last look-up the group was Stable at epoch and
	// listed the member; it is removed if it stays so and silent.
	confirming bool
	epoch      int32
}

// reapedKeys are the requests that carry a classic group member's id.
var reapedKeys = []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.LeaveGroup, kmsg.OffsetCommit, kmsg.TxnOffsetCommit}

// startReaper registers the reaper's control functions on c and starts its
// goroutine. addr is the broker's listen address.
func startReaper(c *kfake.Cluster, addr string, o BrokerOptions) *reaper {
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID("sluice-broker-reaper")}
	if o.TLS != nil {
		// The reaper dials the broker's own listener: there is nothing
		// to verify, and the server certificate may name another host.
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})) //nolint:gosec // loopback to this process's own listener
	}
	if len(o.SASL) > 0 {
		// internal/kafkaauth has the same mapping, but its tests import
		// this package.
		switch u := o.SASL[0]; u[0] {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: u[1], Pass: u[2]}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: u[1], Pass: u[2]}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: u[1], Pass: u[2]}.AsSha512Mechanism()))
		}
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &reaper{
		c:       c,
		opts:    opts,
		logf:    logf,
		members: make(map[memberKey]*memberSeen),
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	for _, k := range reapedKeys {
		c.ControlKey(int16(k), r.observe)
	}
	go r.run()
	return r
}

// close stops the reaper; it must run before the cluster closes (kfake's
// GroupInfo waits for the cluster's loop).
func (r *reaper) close() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		if r.cl != nil {
			r.cl.Close()
		}
	})
}

// observe notes a member's request. It runs inside kfake's request loop:
// it only takes r.mu (never held across a call into the cluster) and never
// blocks otherwise, and it leaves the request to kfake (not handled).
func (r *reaper) observe(req kmsg.Request) (kmsg.Response, error, bool) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req := req.(type) {
	case *kmsg.JoinGroupRequest:
		if req.MemberID == "" {
			break
		}
		session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
		rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
		if req.Version == 0 || rebalance <= 0 {
			rebalance = session // JoinGroup v0 has no rebalance timeout
		}
		k := memberKey{req.Group, req.MemberID}
		m, known := r.members[k]
		if !known {
			m = &memberSeen{}
			r.members[k] = m
		}
		m.session, m.rebalance = session, rebalance
		m.due = now.Add(session + rebalance)
		m.confirming = false
		if !known {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	case *kmsg.SyncGroupRequest:
		r.heard(req.Group, req.MemberID, now)
	case *kmsg.HeartbeatRequest:
		r.heard(req.Group, req.MemberID, now)
	case *kmsg.OffsetCommitRequest:
		r.heard(req.Group, req.MemberID, now)
	case *kmsg.TxnOffsetCommitRequest:
		r.heard(req.Group, req.MemberID, now)
	case *kmsg.LeaveGroupRequest:
		delete(r.members, memberKey{req.Group, req.MemberID}) // v0-2
		for _, m := range req.Members {
			delete(r.members, memberKey{req.Group, m.MemberID})
		}
	}
	return nil, nil, false
}

// heard pushes a tracked member's deadline back; r.mu is held.
func (r *reaper) heard(group, member string, now time.Time) {
	if m := r.members[memberKey{group, member}]; m != nil {
		m.due = now.Add(m.session + m.rebalance)
		m.confirming = false
	}
}

func (r *reaper) run() {
	defer close(r.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(r.reap())
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// reap looks up the members past their deadline, removes those a Stable
// group still lists, and returns how long to wait for the next deadline.
func (r *reaper) reap() time.Duration {
	now := time.Now()
	due := map[string][]string{}
	r.mu.Lock()
	for k, m := range r.members {
		if !m.due.After(now) {
			due[k.group] = append(due[k.group], k.member)
		}
	}
	r.mu.Unlock()

	for group, ids := range due {
		if r.ctx.Err() != nil {
			return time.Hour
		}
		g := r.c.GroupInfo(group) // not under r.mu: it waits for the loop that runs observe
		var leave []string
		r.mu.Lock()
		for _, id := range ids {
			k := memberKey{group, id}
			m := r.members[k]
			switch {
			case m == nil || m.due.After(now):
				// Left, or heard from since.
			case g == nil || !slices.ContainsFunc(g.Members, func(gm kfake.GroupMember) bool { return gm.MemberID == id }):
				delete(r.members, k) // kfake removed it
			case g.State != "Stable":
				// kfake's rebalance and pending-sync timers bound
				// this phase; after it the member has its session
				// timeout, as in Apache Kafka.
				m.due = now.Add(m.session)
				m.confirming = false
			case !m.confirming || m.epoch != g.Epoch:
				// Stable, but maybe only just: a live follower
				// sends its SyncGroup right after its join response,
				// which may come after the leader's. Silent for one
				// more session timeout at this generation, it is
				// dead.
				m.due = now.Add(m.session)
				m.confirming, m.epoch = true, g.Epoch
			default:
				leave = append(leave, id)
				m.due = now.Add(m.session) // retried if the LeaveGroup fails
			}
		}
		r.mu.Unlock()
		if len(leave) > 0 {
			r.leave(group, leave)
		}
	}

	next := time.Hour
	r.mu.Lock()
	for _, m := range r.members {
		next = min(next, max(time.Until(m.due), time.Millisecond))
	}
	r.mu.Unlock()
	return next
}

// leave removes members from group with a LeaveGroup sent to the broker.
func (r *reaper) leave(group string, ids []string) {
	if r.cl == nil {
		cl, err := kgo.NewClient(r.opts...)
		if err != nil {
			r.logf("broker: cannot remove dead members %v of group %q: %v", ids, group, err)
			return
		}
		r.cl = cl
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, id := range ids {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		m.Reason = kmsg.StringPtr("silent past its session and rebalance timeouts (removed by the embedded broker)")
		req.Members = append(req.Members, m)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	seeds := r.cl.SeedBrokers()
	if len(seeds) == 0 {
		return
	}
	kresp, err := seeds[0].Request(ctx, req)
	if err != nil {
		if r.ctx.Err() == nil {
			r.logf("broker: cannot remove dead members %v of group %q: %v", ids, group, err)
		}
		return
	}
	resp := kresp.(*kmsg.LeaveGroupResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		r.logf("broker: cannot remove dead members %v of group %q: %v", ids, group, err)
		return
	}
	for _, m := range resp.Members {
		switch err := kerr.ErrorForCode(m.ErrorCode); err {
		case nil:
			r.logf("broker: removed member %s of group %q: silent past its session and rebalance timeouts (its connection died while it joined)", m.MemberID, group)
		case kerr.UnknownMemberID:
			// Gone meanwhile.
		default:
			r.logf("broker: cannot remove dead member %s of group %q: %v", m.MemberID, group, err)
		}
	}
}

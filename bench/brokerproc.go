package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// brokerProc is the embedded broker run as a child process (`sluice
// broker`), so that the bench process holds the appliance alone: its CPU
// and peak RSS are then the appliance's, and the broker's CPU is read
// from /proc separately. The machine's cores are shared all the same.
type brokerProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startBrokerProc runs argv plus --listen 127.0.0.1:0 --partitions n and
// waits for its "broker listening on ADDR" line.
func startBrokerProc(ctx context.Context, argv []string, partitions int, log io.Writer) (*brokerProc, error) {
	args := append(append([]string{}, argv[1:]...), "--listen", "127.0.0.1:0", "--partitions", strconv.Itoa(partitions))
	cmd := exec.Command(argv[0], args...)
	cmd.Stderr = log
	// A GOMEMLIMIT in the environment is meant for the appliance: under it
	// the broker, whose live heap is the whole log, would collect without
	// pause. (`sluice broker` sets its own GOGC; see devenv.BrokerMain.)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=off")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start the broker process %s: %w", argv[0], err)
	}
	p := &brokerProc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, "broker listening on ")
		if !ok || !found {
			p.stop()
			return nil, fmt.Errorf("cannot start the broker process: it printed %q, not its address", line)
		}
		p.addr, _, _ = strings.Cut(addr, " ")
		p.addr, _, _ = strings.Cut(p.addr, ",")
		return p, nil
	case <-p.done:
		return nil, errors.New("cannot start the broker process: it exited before listening (see its output above)")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("cannot start the broker process: no address within 30s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *brokerProc) pid() int { return p.cmd.Process.Pid }

// stop asks the broker to stop (SIGTERM), then kills it after 10s.
func (p *brokerProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

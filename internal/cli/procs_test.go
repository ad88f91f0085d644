package cli_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestServeSchedulers: `parley serve` runs at least app.MinProcs Go schedulers on a
// machine with fewer CPUs, unless the operator set GOMAXPROCS, as its /metrics shows.
func TestServeSchedulers(t *testing.T) {
	bin := parleyBinary(t)
	unset := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	tests := []struct {
		name string
		env  []string
		want int
	}{
		{"default", unset, max(app.MinProcs, runtime.NumCPU())},
		{"set by the operator", append(slices.Clone(unset), "GOMAXPROCS=3"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, base := serveProcessEnv(t, bin, storetest.SQLiteDSN(t), tt.env)
			if got := gomaxprocs(t, base); got != tt.want {
				t.Fatalf("go_sched_gomaxprocs_threads = %d; want %d", got, tt.want)
			}
		})
	}
}

// gomaxprocs reads the server's GOMAXPROCS from its /metrics.
func gomaxprocs(t *testing.T, base string) int {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "go_sched_gomaxprocs_threads %d", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no go_sched_gomaxprocs_threads in /metrics (%v)", sc.Err())
	return 0
}

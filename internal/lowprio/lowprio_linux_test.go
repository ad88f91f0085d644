package lowprio_test

import (
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/parleyhq/parley/internal/lowprio"
)

// threadNice is the calling thread's nice value (on Linux, PRIO_PROCESS with id 0 is
// the calling thread, and the system call answers 20 - nice).
func threadNice() int {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return -100 // no nice value is this
	}
	return 20 - raw
}

// baseNice is the nice value of the test's own threads, read on a locked thread.
func baseNice(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := threadNice()
	if n < -20 {
		t.Fatal("getpriority failed")
	}
	return n
}

// TestPinLowersOnlyItsOwnThread pins a goroutine and checks its thread's nice value,
// then that threads started while it ran (from it) and after it ended keep the normal
// priority: the kernel copies a thread's nice value into the threads it starts, and
// Go's threads outlive their goroutines.
func TestPinLowersOnlyItsOwnThread(t *testing.T) {
	base := baseNice(t)
	want := min(19, base+lowprio.Nice)
	var pinned, during []int
	var pinErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		pinErr = lowprio.Pin()
		pinned = append(pinned, threadNice())
		during = threadsNice(8)
	}()
	<-done
	if pinErr != nil {
		t.Fatalf("Pin: %v", pinErr)
	}
	if pinned[0] != want {
		t.Errorf("the pinned thread's nice value = %d; want %d", pinned[0], want)
	}
	for when, nices := range map[string][]int{"while": during, "after": threadsNice(8)} {
		for _, n := range nices {
			if n != base {
				t.Errorf("a thread %s a goroutine was pinned has nice value %d; want %d", when, n, base)
			}
		}
	}
}

// threadsNice starts n goroutines, each locked to a thread of its own until all have
// read their thread's nice value (so that they are different threads, several of them
// new), and returns those values.
func threadsNice(n int) []int {
	seen := make(chan int, n)
	var started, release sync.WaitGroup
	release.Add(1)
	for range n {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			seen <- threadNice()
			started.Done()
			release.Wait()
		}()
	}
	started.Wait()
	release.Done()
	out := make([]int, n)
	for i := range out {
		out[i] = <-seen
	}
	return out
}

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
// then that threads started while it ran (goroutines locked to threads of their own,
// started from the pinned one) and after it ended keep the normal priority: the kernel
// copies a thread's nice value into the threads it starts, and Go's threads outlive
// their goroutines.
func TestPinLowersOnlyItsOwnThread(t *testing.T) {
	base := baseNice(t)
	want := min(19, base+lowprio.Nice)
	const others = 8
	var pinned int
	var pinErr error
	seen := make(chan int, others)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pinErr = lowprio.Pin()
		pinned = threadNice()
		var started, release sync.WaitGroup
		release.Add(1)
		for range others {
			started.Add(1)
			go func() {
				// Each holds its thread until all have read theirs, so that they are
				// different threads, several of them new.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				seen <- threadNice()
				started.Done()
				release.Wait()
			}()
		}
		started.Wait()
		release.Done()
	}()
	<-done
	if pinErr != nil {
		t.Fatalf("Pin: %v", pinErr)
	}
	if pinned != want {
		t.Errorf("the pinned thread's nice value = %d; want %d", pinned, want)
	}
	for range others {
		if n := <-seen; n != base {
			t.Errorf("a thread started while a goroutine was pinned has nice value %d; want %d", n, base)
		}
	}
	// The pinned thread exited with its goroutine: no thread of the pool has its priority.
	for range 4 * runtime.GOMAXPROCS(0) {
		if n := baseNice(t); n != base {
			t.Fatalf("after the pinned goroutine ended, a thread of the pool has nice value %d; want %d", n, base)
		}
	}
}

// TestWorkerRunsInTheBackground runs functions on a worker: each runs at the lowered
// priority, in turn, and Run returns after it.
func TestWorkerRunsInTheBackground(t *testing.T) {
	base := baseNice(t)
	w := lowprio.Start()
	defer w.Stop()
	if err := w.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	for i := range 3 {
		var got int
		w.Run(func() { got = threadNice() })
		if want := min(19, base+lowprio.Nice); got != want {
			t.Fatalf("run %d: nice value %d on the worker; want %d", i, got, want)
		}
	}
	if n := threadNice(); n != base {
		t.Fatalf("the caller's nice value after Run = %d; want %d", n, base)
	}
}

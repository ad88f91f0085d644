package lowprio

import (
	"fmt"
	"runtime"
	"syscall"
)

func pin() error {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	nice, err := threadNice(tid)
	if err != nil {
		return err
	}
	// A process already at a nicer value than the target keeps it: lowering a nice value
	// needs privileges.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(19, nice+Nice)); err != nil {
		return fmt.Errorf("lower the priority of thread %d: %w", tid, err)
	}
	return nil
}

// threadNice returns a thread's nice value (-20 to 19).
func threadNice(tid int) (int, error) {
	// The system call answers 20 - nice, so that no answer looks like an error.
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return 0, fmt.Errorf("read the priority of thread %d: %w", tid, err)
	}
	return 20 - raw, nil
}

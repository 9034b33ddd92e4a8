//go:build !purego

#include "go_asm.h"
#include "textflag.h"

// func prefetchSlots(pair, sender uintptr)
TEXT ·prefetchSlots(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ	pair+0(FP), AX
	MOVQ	sender+8(FP), BX
	PREFETCHT0	(AX)
	PREFETCHT0	(pairSlot__size-1)(AX)
	PREFETCHT0	(BX)
	PREFETCHT0	(senderSlot__size-1)(BX)
	RET

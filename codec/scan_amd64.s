#include "textflag.h"

// func scanSpecial(s []byte) int
//
// Per 16-byte chunk: bytes equal to '"' or '\\', and bytes below 0x20 as
// signed bytes, which are the control bytes and every byte from 0x80 up.
TEXT ·scanSpecial(SB), NOSPLIT, $0-32
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), CX
	ANDQ $-16, CX
	XORQ AX, AX
	MOVQ $0x2222222222222222, DX
	MOVQ DX, X1
	PUNPCKLQDQ X1, X1
	MOVQ $0x5c5c5c5c5c5c5c5c, DX
	MOVQ DX, X2
	PUNPCKLQDQ X2, X2
	MOVQ $0x2020202020202020, DX
	MOVQ DX, X3
	PUNPCKLQDQ X3, X3

loop:
	CMPQ    AX, CX
	JAE     none
	MOVOU   (SI)(AX*1), X0
	MOVO    X0, X4
	PCMPEQB X1, X4
	MOVO    X0, X5
	PCMPEQB X2, X5
	POR     X5, X4
	MOVO    X3, X6
	PCMPGTB X0, X6
	POR     X6, X4
	PMOVMSKB X4, DX
	TESTL   DX, DX
	JNZ     found
	ADDQ    $16, AX
	JMP     loop

found:
	BSFL DX, DX
	ADDQ DX, AX
	MOVQ AX, ret+24(FP)
	RET

none:
	MOVQ CX, ret+24(FP)
	RET

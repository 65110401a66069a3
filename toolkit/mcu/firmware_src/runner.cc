// edgekit's measuring firmware (not the example): built with the generated model_data.cc and run under QEMU
// with semihosting. It reports, on lines starting "edgekit ":
//   arena_used_bytes  MicroInterpreter::arena_used_bytes() after AllocateTensors in the full arena;
//   min_arena_bytes   the smallest arena (a multiple of 16) in which AllocateTensors succeeds (bisection);
//   images N ticks    every image of edgekit_in.bin run in that smallest arena, outputs to edgekit_out.bin;
//   calibration       SysTick ticks over a loop of known instruction count (ticks to instructions);
//   stack_bytes       the deepest stack below main's frame over all of the above (a painted region).
#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef EDGEKIT_ARENA_MAX
#error "build with -DEDGEKIT_ARENA_MAX=<bytes>"
#endif

extern "C" void edgekit_ticks_start(void);
extern "C" uint64_t edgekit_ticks(void);

alignas(16) static uint8_t tensor_arena[EDGEKIT_ARENA_MAX];

// The stack below main is painted with a pattern first; the lowest overwritten word is the deepest use.
constexpr uint32_t kPaintBytes = 64 * 1024;
constexpr uint32_t kPattern = 0xA5A5A5A5u;
constexpr uint32_t kPaintGap = 512;  // left unpainted under main's frame: PaintStack's own frame lives there

__attribute__((noinline)) static uint32_t* PaintStack(uintptr_t main_sp) {
  volatile uint32_t* low = reinterpret_cast<volatile uint32_t*>(main_sp - kPaintGap - kPaintBytes);
  for (uint32_t i = 0; i < kPaintBytes / 4; ++i) low[i] = kPattern;
  return const_cast<uint32_t*>(low);
}

static uint32_t StackUsed(const uint32_t* low, uintptr_t main_sp) {
  const volatile uint32_t* p = low;
  while (reinterpret_cast<uintptr_t>(p) < main_sp - kPaintGap && *p == kPattern) ++p;
  return static_cast<uint32_t>(main_sp - reinterpret_cast<uintptr_t>(p));
}

static bool Allocates(const tflite::Model* model, ModelOpResolver& resolver, size_t size) {
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, size);
  return interpreter.AllocateTensors() == kTfLiteOk;
}

// 2 instructions per iteration (subs, bne): `count` iterations run 2 * count + 4 instructions.
static uint64_t LoopTicks(uint32_t count) {
  uint64_t t0 = edgekit_ticks();
  __asm__ volatile(
      "mov r0, %0\n"
      "1: subs r0, r0, #1\n"
      "bne 1b\n"
      :
      : "r"(count)
      : "r0", "cc");
  return edgekit_ticks() - t0;
}

int main() {
  uintptr_t main_sp;
  __asm__ volatile("mov %0, sp" : "=r"(main_sp));
  uint32_t* painted = PaintStack(main_sp);
  edgekit_ticks_start();
  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) {
    printf("edgekit error op_resolver\n");
    return 2;
  }
  const tflite::Model* model = tflite::GetModel(g_model_data);
  size_t used = 0;
  {
    tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));
    if (interpreter.AllocateTensors() != kTfLiteOk) {
      printf("edgekit error arena_too_small %u\n", (unsigned)sizeof(tensor_arena));
      return 3;
    }
    used = interpreter.arena_used_bytes();
  }
  printf("edgekit arena_used_bytes %u\n", (unsigned)used);
  size_t lo = 0, hi = sizeof(tensor_arena) / 16 * 16;  // lo fails (nothing allocates in 0 bytes), hi allocates
  while (hi - lo > 16) {
    size_t mid = (lo + hi) / 2 / 16 * 16;
    if (mid <= lo) break;
    if (Allocates(model, resolver, mid)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  printf("edgekit min_arena_bytes %u\n", (unsigned)hi);
  printf("edgekit calibration %u %llu\n", 1000000u, (unsigned long long)LoopTicks(1000000u));

  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, hi);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 4;
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  FILE* in = fopen("edgekit_in.bin", "rb");
  FILE* out = fopen("edgekit_out.bin", "wb");
  if (in == nullptr || out == nullptr) {
    printf("edgekit error files\n");
    return 5;
  }
  unsigned images = 0;
  uint64_t ticks = 0;
  // Each image straight into the input tensor (int8 bytes, as the host quantized them).
  while (fread(input->data.int8, 1, input->bytes, in) == input->bytes) {
    uint64_t t0 = edgekit_ticks();
    if (interpreter.Invoke() != kTfLiteOk) {
      printf("edgekit error invoke %u\n", images);
      return 6;
    }
    ticks += edgekit_ticks() - t0;
    fwrite(output->data.int8, 1, output->bytes, out);
    ++images;
  }
  fclose(in);
  fclose(out);
  printf("edgekit images %u %llu\n", images, (unsigned long long)ticks);
  printf("edgekit stack_bytes %u %u\n", (unsigned)StackUsed(painted, main_sp), (unsigned)kPaintBytes);
  printf("edgekit done\n");
  return 0;
}

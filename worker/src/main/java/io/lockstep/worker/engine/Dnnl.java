package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_FROM;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_TO;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_blocked;
import static org.bytedeco.dnnl.global.dnnl.dnnl_cpu;
import static org.bytedeco.dnnl.global.dnnl.dnnl_cpu_isa_avx512_core_bf16;
import static org.bytedeco.dnnl.global.dnnl.dnnl_engine_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_f32;
import static org.bytedeco.dnnl.global.dnnl.dnnl_get_effective_cpu_isa;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_equal;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_get_size;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_init_by_strides;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_init_by_tag;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_get_data_handle;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_set_data_handle;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_query;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_query_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_execute;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_exec_arg_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_impl_info_str;
import static org.bytedeco.dnnl.global.dnnl.dnnl_reorder_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_default_flags;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_wait;
import static org.bytedeco.dnnl.global.dnnl.dnnl_success;
import static org.bytedeco.dnnl.global.dnnl.dnnl_unimplemented;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.const_dnnl_op_desc_t;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.nativeblas.NativeOps;
import org.nd4j.nativeblas.NativeOpsHolder;

/**
 * oneDNN's C API, through JavaCPP, as the engine uses it: memory descriptors, memories, primitive
 * descriptors and primitives, with every status checked. Everything a {@link Dnnl.Scope} creates is
 * destroyed when the scope closes.
 */
final class Dnnl {
  /** oneDNN's {@code DNNL_MEMORY_ALLOCATE}: let the library allocate the memory. */
  private static final Pointer ALLOCATE = new Address(-1L);

  private static dnnl_engine engine;

  /** The arguments whose absence {@link Scope#step} reports. */
  private static final int[] CHECKED = {
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_1,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_MEAN,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_VARIANCE,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCALE,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SHIFT,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WORKSPACE,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_BIAS,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SCALE,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SHIFT,
    org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCRATCHPAD
  };

  private Dnnl() {}

  /**
   * @return the process's CPU engine, created on first use
   */
  static synchronized dnnl_engine engine() {
    if (engine == null) {
      final dnnl_engine created = new dnnl_engine();
      check(dnnl_engine_create(created, dnnl_cpu, 0), "creating the CPU engine");
      engine = created;
    }
    return engine;
  }

  static void check(int status, String what) {
    if (status == dnnl_unimplemented) {
      throw new Unimplemented("oneDNN failed " + what + ": " + statusName(status));
    }
    if (status != dnnl_success) {
      throw new IllegalStateException("oneDNN failed " + what + ": " + statusName(status));
    }
  }

  /** oneDNN has no implementation, not even its reference code, for a primitive as described. */
  static final class Unimplemented extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    Unimplemented(String message) {
      super(message);
    }
  }

  /** {@code dnnl_status_t}'s names. */
  private static String statusName(int status) {
    return switch (status) {
      case 1 -> "out of memory";
      case 2 -> "invalid arguments";
      case 3 -> "unimplemented for these shapes and layouts";
      case 5 -> "runtime error";
      case 6 -> "not required";
      default -> "status " + status;
    };
  }

  /**
   * A float32 descriptor with a format tag ({@code dnnl_format_tag_any} lets a primitive choose).
   */
  static dnnl_memory_desc_t md(long[] dims, int tag) {
    final dnnl_memory_desc_t md = new dnnl_memory_desc_t();
    check(dnnl_memory_desc_init_by_tag(md, dims.length, dims, dnnl_f32, tag), "describing memory");
    return md;
  }

  /** A float32 descriptor with explicit strides, in elements. */
  static dnnl_memory_desc_t md(long[] dims, long[] strides) {
    final dnnl_memory_desc_t md = new dnnl_memory_desc_t();
    check(
        dnnl_memory_desc_init_by_strides(md, dims.length, dims, dnnl_f32, strides),
        "describing strided memory");
    return md;
  }

  /** A copy of a descriptor with another data type ({@code dnnl_bf16}, ...), the same layout. */
  static dnnl_memory_desc_t withType(dnnl_memory_desc_t md, int dataType) {
    final dnnl_memory_desc_t copy = new dnnl_memory_desc_t();
    Pointer.memcpy(copy, md, copy.sizeof());
    copy.data_type(dataType);
    return copy;
  }

  /**
   * Whether oneDNN computes bfloat16 here with the CPU's own instructions (AVX512_BF16 or AMX)
   * rather than emulating them, which is slower than float32.
   */
  static boolean nativeBf16() {
    // oneDNN's ISAs are bit sets, each holding those it extends: AMX's holds AVX512_BF16's
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16)
        == dnnl_cpu_isa_avx512_core_bf16;
  }

  /** The instruction set oneDNN generates kernels for here, as {@code DNNL_VERBOSE} names it. */
  static String cpuIsa() {
    final int isa = dnnl_get_effective_cpu_isa();
    for (org.bytedeco.dnnl.global.dnnl.cpu_isa known :
        org.bytedeco.dnnl.global.dnnl.cpu_isa.values()) {
      if (known.value == isa) {
        return known.name();
      }
    }
    return "0x" + Integer.toHexString(isa);
  }

  /** Plain row-major float32: the last dimension contiguous, the first the outermost. */
  static dnnl_memory_desc_t plain(long[] dims) {
    final long[] strides = new long[dims.length];
    long stride = 1;
    for (int d = dims.length - 1; d >= 0; d--) {
      strides[d] = stride;
      stride *= dims[d];
    }
    return md(dims, strides);
  }

  /** Whether {@code md} is laid out by strides alone, in any order: no blocks, no padding. */
  static boolean isPlain(dnnl_memory_desc_t md) {
    return md.format_kind() == dnnl_blocked && md.format_desc_blocking().inner_nblks() == 0;
  }

  /** The bytes a memory of {@code md} spans. */
  static long size(dnnl_memory_desc_t md) {
    return dnnl_memory_desc_get_size(md);
  }

  static boolean same(dnnl_memory_desc_t a, dnnl_memory_desc_t b) {
    return dnnl_memory_desc_equal(a, b) != 0;
  }

  /** The native address of an ND4J float array's first element. */
  static long address(INDArray array) {
    if (array.dataType() != DataType.FLOAT) {
      throw new IllegalArgumentException("expected float32, got " + array.dataType());
    }
    return array.data().address() + array.offset() * Float.BYTES;
  }

  /** A raw address as a JavaCPP pointer, for memories over ND4J's buffers. */
  static final class Address extends Pointer {
    Address(long address) {
      this.address = address;
    }
  }

  /**
   * The implementation a primitive descriptor chose, as {@code DNNL_VERBOSE} names it ({@code
   * jit:avx2}, {@code ref:any}, ...).
   */
  static String implementation(dnnl_primitive_desc pd) {
    try (PointerPointer<BytePointer> name = new PointerPointer<>(1)) {
      check(
          dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, name),
          "querying the implementation");
      return name.get(BytePointer.class, 0).getString();
    }
  }

  /**
   * Whether oneDNN fell back to its reference code, which is correct but tens of times slower than
   * its generated kernels: a layout it has no kernel for.
   */
  static boolean isReference(dnnl_primitive_desc pd) {
    return implementation(pd).startsWith("ref");
  }

  /**
   * One primitive with its arguments bound: executing it is one native call. A primitive whose
   * arguments together take less than {@link #ONE_THREAD_BYTES} runs on the calling thread alone,
   * as PyTorch runs its operations on fewer elements than its grain size: waking the OpenMP team's
   * other threads (asleep between primitives, {@code OMP_WAIT_POLICY=PASSIVE}) costs more than they
   * save. The seed perceptron's forward and backward pass at batch 64: 0.66 ms with every primitive
   * on two threads, 0.61 with all on one, 0.55 with only the small ones on one.
   */
  static final class Step {
    /**
     * 128 KiB: a ReLU's backward pass over 64 x 128 floats reads and writes 96 KiB; at 256 KiB the
     * grounding model's step at batch 16 lost a tenth.
     */
    static final long ONE_THREAD_BYTES = 128 * 1024;

    private final dnnl_primitive primitive;
    private final dnnl_exec_arg_t args;
    private final int count;
    private final String what;
    private final boolean small;

    Step(dnnl_primitive primitive, int[] kinds, Memory[] memories, String what) {
      this.primitive = primitive;
      this.what = what;
      this.count = kinds.length;
      this.args = new dnnl_exec_arg_t(count);
      long bytes = 0;
      for (int i = 0; i < count; i++) {
        args.position(i).arg(kinds[i]).memory(memories[i].memory);
        bytes += size(memories[i].md);
      }
      args.position(0);
      this.small = bytes < ONE_THREAD_BYTES;
    }

    void execute(dnnl_stream stream) {
      final NativeOps ops = small ? NativeOpsHolder.getInstance().getDeviceNativeOps() : null;
      final int threads = small ? ops.ompGetMaxThreads() : 1;
      if (threads > 1) {
        ops.setOmpNumThreads(1);
      }
      try {
        check(dnnl_primitive_execute(primitive, stream, count, args), "executing " + what);
      } finally {
        if (threads > 1) {
          ops.setOmpNumThreads(threads);
        }
      }
    }
  }

  /** A memory: a descriptor and a buffer, allocated by oneDNN or borrowed from ND4J. */
  static final class Memory {
    final dnnl_memory_desc_t md;
    final dnnl_memory memory;

    private Memory(dnnl_memory_desc_t md, dnnl_memory memory) {
      this.md = md;
      this.memory = memory;
    }

    /** Points this memory at another buffer of the same layout. */
    void rebind(long address) {
      check(dnnl_memory_set_data_handle(memory, new Address(address)), "rebinding memory");
    }

    /** The buffer's address. */
    long address() {
      final PointerPointer<Pointer> handle = new PointerPointer<>(1);
      check(dnnl_memory_get_data_handle(memory, handle), "reading a memory's address");
      final Pointer pointer = handle.get(0);
      return pointer == null ? 0L : pointer.address(); // a network input before its first batch
    }
  }

  /** Owns what it creates; closing it destroys all of it. */
  static final class Scope implements AutoCloseable {
    private final List<dnnl_memory> memories = new ArrayList<>();
    private final List<dnnl_primitive_desc> descriptors = new ArrayList<>();
    private final List<dnnl_primitive> primitives = new ArrayList<>();
    private final List<dnnl_memory_desc_t> keep = new ArrayList<>();
    private final List<Pointer> buffers = new ArrayList<>();
    private final List<String> implementations = new ArrayList<>();
    private dnnl_stream stream;

    /** Each bound primitive, in the order built, as {@code what: implementation}. */
    List<String> implementations() {
      return List.copyOf(implementations);
    }

    dnnl_stream stream() {
      if (stream == null) {
        final dnnl_stream created = new dnnl_stream();
        check(
            dnnl_stream_create(created, engine(), dnnl_stream_default_flags), "creating a stream");
        stream = created;
      }
      return stream;
    }

    void await() {
      check(dnnl_stream_wait(stream()), "waiting for the stream");
    }

    /** A float buffer Java can read and write, freed with the scope. */
    FloatPointer floats(long count) {
      final FloatPointer buffer = new FloatPointer(count);
      buffers.add(buffer);
      return buffer;
    }

    /** A memory that oneDNN allocates. */
    Memory allocate(dnnl_memory_desc_t md) {
      return create(md, ALLOCATE);
    }

    /** A memory over a buffer someone else owns. */
    Memory wrap(dnnl_memory_desc_t md, long address) {
      return create(md, new Address(address));
    }

    private Memory create(dnnl_memory_desc_t md, Pointer handle) {
      final dnnl_memory_desc_t copy = copy(md);
      final dnnl_memory memory = new dnnl_memory();
      check(dnnl_memory_create(memory, copy, engine(), handle), "creating memory");
      memories.add(memory);
      return new Memory(copy, memory);
    }

    /** A copy of a descriptor that lives as long as this scope. */
    dnnl_memory_desc_t copy(dnnl_memory_desc_t md) {
      final dnnl_memory_desc_t copy = new dnnl_memory_desc_t();
      Pointer.memcpy(copy, md, copy.sizeof());
      keep.add(copy);
      return copy;
    }

    /** A primitive descriptor of an operation; {@code hint} is the forward one for backward. */
    dnnl_primitive_desc describe(
        Pointer operation, dnnl_primitive_attr attributes, dnnl_primitive_desc hint, String what) {
      final dnnl_primitive_desc pd = new dnnl_primitive_desc();
      check(
          dnnl_primitive_desc_create(
              pd, new const_dnnl_op_desc_t(operation), attributes, engine(), hint),
          "describing " + what);
      descriptors.add(pd);
      return pd;
    }

    /** What a primitive descriptor chose for the memory of an argument ({@code DNNL_ARG_...}). */
    dnnl_memory_desc_t argument(dnnl_primitive_desc pd, int argument) {
      return copy(dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, argument));
    }

    /** What a primitive descriptor chose for one of its memories. */
    dnnl_memory_desc_t query(dnnl_primitive_desc pd, int what) {
      return copy(dnnl_primitive_desc_query_md(pd, what, 0));
    }

    /**
     * A primitive with its arguments bound, each memory checked against the layout the primitive
     * expects for it; an argument whose memory is null (an absent bias) is left out.
     */
    Step step(dnnl_primitive_desc pd, int[] allKinds, Memory[] allMemories, String what) {
      final int present = (int) java.util.Arrays.stream(allMemories).filter(m -> m != null).count();
      final int[] kinds = new int[present];
      final Memory[] memories = new Memory[present];
      for (int i = 0, j = 0; i < allMemories.length; i++) {
        if (allMemories[i] != null) {
          kinds[j] = allKinds[i];
          memories[j++] = allMemories[i];
        }
      }
      for (int i = 0; i < kinds.length; i++) {
        final dnnl_memory_desc_t expected =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, kinds[i]);
        if (expected == null || expected.isNull() || expected.ndims() == 0) {
          throw new IllegalStateException(what + ": argument " + kinds[i] + " is not expected");
        }
        if (!same(expected, memories[i].md)) {
          throw new IllegalStateException(
              what + ": argument " + kinds[i] + " has another layout than the primitive expects");
        }
      }
      for (int kind : CHECKED) {
        final dnnl_memory_desc_t expected =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, kind);
        if (expected != null
            && !expected.isNull()
            && expected.ndims() != 0
            && java.util.Arrays.stream(kinds).noneMatch(k -> k == kind)
            && !(kind == DNNL_ARG_WEIGHTS && has(kinds, DNNL_ARG_SCALE))
            && !(kind == DNNL_ARG_DIFF_WEIGHTS && has(kinds, DNNL_ARG_DIFF_SCALE))) {
          throw new IllegalStateException(what + ": argument " + kind + " is missing");
        }
      }
      implementations.add(what + ": " + implementation(pd));
      return new Step(primitive(pd), kinds, memories, what);
    }

    private static boolean has(int[] kinds, int kind) {
      return java.util.Arrays.stream(kinds).anyMatch(k -> k == kind);
    }

    dnnl_primitive primitive(dnnl_primitive_desc pd) {
      final dnnl_primitive primitive = new dnnl_primitive();
      check(dnnl_primitive_create(primitive, pd), "creating a primitive");
      primitives.add(primitive);
      return primitive;
    }

    /** A step copying {@code from} into {@code to}, converting the layout. */
    Step reorder(Memory from, Memory to) {
      final dnnl_primitive_desc pd = new dnnl_primitive_desc();
      check(
          dnnl_reorder_primitive_desc_create(pd, from.md, engine(), to.md, engine(), null),
          "describing a reorder");
      descriptors.add(pd);
      return new Step(
          primitive(pd),
          new int[] {DNNL_ARG_FROM, DNNL_ARG_TO},
          new Memory[] {from, to},
          "a reorder to another layout");
    }

    @Override
    public void close() {
      primitives.forEach(p -> dnnl_primitive_destroy(p));
      descriptors.forEach(pd -> dnnl_primitive_desc_destroy(pd));
      memories.forEach(m -> dnnl_memory_destroy(m));
      if (stream != null) {
        dnnl_stream_destroy(stream);
        stream = null;
      }
      buffers.forEach(Pointer::close);
      buffers.clear();
      primitives.clear();
      descriptors.clear();
      memories.clear();
      keep.clear();
    }
  }
}

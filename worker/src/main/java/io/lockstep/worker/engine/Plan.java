package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_0;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_1;
import static org.bytedeco.dnnl.global.dnnl.dnnl_bf16;
import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_add;
import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_f32;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import io.lockstep.worker.engine.Dnnl.Step;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import org.bytedeco.dnnl.dnnl_binary_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.javacpp.Pointer;

/** Everything one batch size needs: memories, primitives and the order to run them in. */
final class Plan {
  private final CompiledNetwork network;
  final Scope scope = new Scope();

  /** The network's inputs, in its order: each a plain row-major memory rebound every step. */
  final Memory[] inputs;

  /** Memories over the inputs' buffers in other shapes ({@link #alias}), rebound with them. */
  private final Map<Memory, List<Memory>> aliases = new HashMap<>();

  final List<Action> forward = new ArrayList<>();
  final List<Action> backward = new ArrayList<>();
  final Map<String, Tensor> tensors = new HashMap<>();
  final Map<String, Integer> consumers = new HashMap<>();
  float[] labels;
  double loss;

  /**
   * @param shapes each input's shape, the batch first
   */
  Plan(CompiledNetwork network, long[][] shapes) {
    this.network = network;
    boolean built = false;
    try {
      for (Op op : network.ops) {
        for (String in : op.inputs) {
          consumers.merge(in, 1, Integer::sum);
        }
      }
      inputs = new Memory[shapes.length];
      for (int i = 0; i < shapes.length; i++) {
        final String name = network.inputNames.get(i);
        inputs[i] = scope.wrap(Dnnl.plain(shapes[i]), 0L);
        final Tensor tensor = new Tensor(shapes[i], inputs[i], false);
        tensor.consumersLeft = consumers.getOrDefault(name, 0);
        tensors.put(name, tensor);
      }
      final List<List<Action>> backwardPerOp = new ArrayList<>();
      for (Op op : network.ops) {
        final List<Action> back = new ArrayList<>();
        op.build(this, forward, back);
        backwardPerOp.add(back);
      }
      for (int i = backwardPerOp.size() - 1; i >= 0; i--) {
        backward.addAll(backwardPerOp.get(i));
      }
      built = true;
    } finally {
      if (!built) {
        scope.close();
      }
    }
  }

  /**
   * The buffer of {@code memory} seen through another descriptor (rows of images as a matrix): a
   * network input's alias is rebound with it each step.
   */
  Memory alias(Memory memory, dnnl_memory_desc_t md) {
    final Memory alias = scope.wrap(md, memory.address());
    for (Memory input : inputs) {
      if (input == memory) {
        aliases.computeIfAbsent(input, key -> new ArrayList<>()).add(alias);
      }
    }
    return alias;
  }

  /** Points input {@code index}, and its aliases, at a batch's buffer. */
  void bindInput(int index, long address) {
    inputs[index].rebind(address);
    for (Memory alias : aliases.getOrDefault(inputs[index], List.of())) {
      alias.rebind(address);
    }
  }

  /** Whether convolutions and dense layers read bfloat16 where oneDNN has a kernel for it. */
  boolean bf16() {
    return network.bf16;
  }

  Tensor tensor(String name) {
    return tensors.get(name);
  }

  /** Registers an operation's output, with a gradient memory of the same layout. */
  Tensor output(String name, long[] dims, Memory data) {
    final Tensor tensor = new Tensor(dims, data, true);
    tensor.diff = scope.allocate(data.md);
    tensor.consumersLeft = consumers.getOrDefault(name, 0);
    tensors.put(name, tensor);
    return tensor;
  }

  /**
   * Where an operation writes the gradient of one of its inputs: the input's gradient memory for
   * the last consumer in forward order (the first to run backward), else a scratch memory that an
   * added step sums into it.
   *
   * @return the memory to write, and in {@code back} after the caller's step the sum, if any
   */
  Memory diffTarget(Tensor input, List<Action> accumulate) {
    // built in forward order, run in reverse: the last consumer built is the first to write
    input.consumersLeft--;
    if (input.consumersLeft == 0) {
      return input.diff;
    }
    final Memory scratch = scope.allocate(input.diff.md);
    final Step sum = binary(dnnl_binary_add, input.diff, scratch, input.diff);
    accumulate.add(() -> sum.execute(scope.stream()));
    return scratch;
  }

  /**
   * The descriptor of a convolution's or dense layer's primitive: in a bfloat16 plan, of the first
   * layout in {@code layouts} that oneDNN has a bfloat16 kernel for; else, and in float32, of the
   * first that it has a generated float32 kernel for ({@link Op#firstKernel}). oneDNN's other
   * bfloat16 code (its gemm-based convolutions and inner products) runs slower than its float32
   * kernels: LeNet's first convolution's weight gradient took 26 times as long.
   *
   * @param describe the descriptor for a layout and the data type ({@code dnnl_f32}, {@code
   *     dnnl_bf16}) of what the primitive reads: source, weights, output gradient
   */
  dnnl_primitive_desc kernel(
      List<dnnl_memory_desc_t> layouts,
      BiFunction<dnnl_memory_desc_t, Integer, dnnl_primitive_desc> describe) {
    if (network.bf16) {
      for (dnnl_memory_desc_t layout : layouts) {
        final dnnl_primitive_desc pd;
        try {
          pd = describe.apply(layout, dnnl_bf16);
        } catch (Dnnl.Unimplemented e) {
          continue; // no bfloat16 code at all for this layout: the next, else float32
        }
        final String implementation = Dnnl.implementation(pd);
        if (implementation.contains("bf16") || implementation.contains("amx")) {
          return pd;
        }
      }
    }
    return Op.firstKernel(layouts, layout -> describe.apply(layout, dnnl_f32));
  }

  /**
   * A memory in {@code md}: the first of {@code held} that is in it, else a copy of {@code held[0]}
   * (the float32 original) that a reorder of layout, type or both, appended to {@code to}, fills.
   */
  Memory as(dnnl_memory_desc_t md, List<Action> to, Memory... held) {
    for (Memory memory : held) {
      if (Dnnl.same(md, memory.md)) {
        return memory;
      }
    }
    final Memory copy = scope.allocate(md);
    to.add(run(scope.reorder(held[0], copy)));
    return copy;
  }

  /** {@code dst = a op b}, element by element: {@code dnnl_binary_add}, {@code _mul}, ... */
  Step binary(int algorithm, Memory a, Memory b, Memory dst) {
    final dnnl_binary_desc_t desc = new dnnl_binary_desc_t();
    Dnnl.check(dnnl_binary_desc_init(desc, algorithm, a.md, b.md, dst.md), "binary op");
    final dnnl_primitive_desc pd = scope.describe(desc, null, null, "an element-wise op");
    return scope.step(
        pd,
        new int[] {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST},
        new Memory[] {a, b, dst},
        "an element-wise op");
  }

  /** An action that sets every byte of {@code memory} to zero. */
  Action zero(Memory memory) {
    final long bytes = Dnnl.size(memory.md);
    final long address = memory.address();
    return () -> {
      scope.await();
      Pointer.memset(new Dnnl.Address(address), 0, bytes);
    };
  }

  Action run(Step step) {
    return () -> step.execute(scope.stream());
  }

  void done(String layer, List<Action> back) {
    back.add(
        () -> {
          final Consumer<String> listener = network.layerDone;
          if (listener != null) {
            scope.await();
            listener.accept(layer);
          }
        });
  }
}

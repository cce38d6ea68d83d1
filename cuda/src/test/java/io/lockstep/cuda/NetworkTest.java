package io.lockstep.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The CUDA engine's network description: shapes, the flat parameter layout and its checks. */
class NetworkTest {
  @Test
  void shouldLayOutLenetsParametersAsTheZoosModel() {
    final Network lenet = Networks.lenet();
    assertEquals(431_080, lenet.parameterCount());
    assertEquals(10, lenet.classes());
    final List<Network.Parameter> parameters = lenet.parameters();
    assertEquals("conv1.weight", parameters.get(0).name());
    assertArrayEquals(new int[] {20, 1, 5, 5}, parameters.get(0).shape());
    assertEquals(500, parameters.get(1).offset());
    final Network.Parameter fc1 = parameters.get(4);
    assertEquals("fc1.weight", fc1.name());
    assertArrayEquals(new int[] {500, 800}, fc1.shape());
    assertArrayEquals(new int[] {50, 4, 4}, lenet.shapes()[6]);
  }

  @Test
  void shouldLayOutResnet18CifarsParametersAsThePytorchReference() {
    final Network resnet = Networks.resnet18Cifar();
    assertEquals(11_173_962, resnet.parameterCount());
    final int[][] shapes = resnet.shapes();
    assertArrayEquals(new int[] {512, 4, 4}, shapes[shapes.length - 3]);
    assertTrue(resnet.toJson().contains("\"name\": \"layer2.0.shortcut.0\""));
    final long projections =
        resnet.nodes().stream().filter(n -> n.name().endsWith(".shortcut.0")).count();
    assertEquals(3, projections);
  }

  @Test
  void shouldInitializeAsPytorchDoesAndRepeatUnderTheSameSeed() {
    final Network resnet = Networks.resnet18Cifar();
    final float[] a = resnet.initialParameters(7);
    assertArrayEquals(a, resnet.initialParameters(7));
    final Network.Parameter conv1 = resnet.parameters().get(0);
    final double bound = 1 / Math.sqrt(27);
    for (int i = 0; i < conv1.size(); i++) {
      assertTrue(Math.abs(a[i]) <= bound);
    }
    final Network.Parameter scale = resnet.parameters().get(1);
    assertEquals("bn1.weight", scale.name());
    assertEquals(1f, a[scale.offset()]);
    assertEquals(0f, a[scale.offset() + scale.size()]);
  }

  @Test
  void shouldRefuseNodesThatReadLaterNodesOrDoNotFit() {
    final IllegalArgumentException later =
        assertThrows(
            IllegalArgumentException.class,
            () -> new Network(1, 28, 28, List.of(new Network.Relu("relu", 0))));
    assertTrue(later.getMessage().contains("node 0 (relu) reads node 0"), later.getMessage());
    final IllegalArgumentException small =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new Network(
                    1, 4, 4, List.of(new Network.Conv("conv", Network.INPUT, 8, 5, 1, 0, true))));
    assertTrue(small.getMessage().contains("too small for its kernel"), small.getMessage());
    final IllegalArgumentException add =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new Network(
                    1,
                    8,
                    8,
                    List.of(
                        new Network.Conv("conv", Network.INPUT, 8, 3, 1, 1, false),
                        new Network.Add("add", 0, Network.INPUT))));
    assertTrue(add.getMessage().contains("which differ"), add.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Networks.named("vgg"));
  }
}

/**
 * What the parameter server and its clients share, and nothing else: the {@link
 * io.lockstep.protocol.Frame} header and the messages it carries ({@link
 * io.lockstep.protocol.ConfigureMessage}, {@link io.lockstep.protocol.StatusMessage}; gradient,
 * result and statistics payloads as {@link io.lockstep.protocol.ChunkCodec} encodes them; an
 * abort's UTF-8 reason), how a vector is cut into chunks ({@link io.lockstep.protocol.ChunkLayout})
 * and into shards ({@link io.lockstep.protocol.ServerShards}), the job's key and frame tags ({@link
 * io.lockstep.protocol.FrameKey}, {@link io.lockstep.protocol.FrameTag}), a server's address
 * ({@link io.lockstep.protocol.ServerAddress}), the gradients one host shares in memory ({@link
 * io.lockstep.protocol.SharedGradients}), and the media drivers every process embeds ({@link
 * io.lockstep.protocol.MediaDrivers}).
 *
 * <p>The server ({@code io.lockstep.ps}) and the worker's client ({@code io.lockstep.ps.client})
 * both depend on this package; neither depends on the other.
 */
package io.lockstep.protocol;

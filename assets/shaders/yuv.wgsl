// A video panel: one R8 texture holding an I420 picture as it is laid out in memory (the Y
// plane, then the U and V planes, each row of a chroma plane half a texture row), converted to
// RGB here (BT.601, limited range). Before the first picture, or with the camera off, the
// panel shows its placeholder colour.

#import bevy_pbr::forward_io::VertexOutput

struct PanelUniform {
    placeholder: vec4<f32>,
    // x: 1 when a picture is there; y: width; z: height; w: 1 to mirror it.
    state: vec4<f32>,
}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var planes: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var<uniform> panel: PanelUniform;

fn chroma(base: u32, x: u32, y: u32, w: u32) -> f32 {
    let index = base + y * (w / 2u) + x;
    return textureLoad(planes, vec2<u32>(index % w, index / w), 0).r;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    if (panel.state.x < 0.5) {
        let shade = 0.75 + 0.25 * in.uv.y;
        return vec4<f32>(panel.placeholder.rgb * shade, 1.0);
    }
    let w = u32(panel.state.y);
    let h = u32(panel.state.z);
    let across = select(in.uv.x, 1.0 - in.uv.x, panel.state.w > 0.5);
    let x = min(u32(across * f32(w)), w - 1u);
    let y = min(u32(in.uv.y * f32(h)), h - 1u);
    let luma = textureLoad(planes, vec2<u32>(x, y), 0).r;
    let u = chroma(w * h, x / 2u, y / 2u, w);
    let v = chroma(w * h + (w / 2u) * (h / 2u), x / 2u, y / 2u, w);
    let c = 1.164 * (luma - 0.0625);
    let d = u - 0.5;
    let e = v - 0.5;
    let rgb = vec3<f32>(c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d);
    // The texture holds sRGB-encoded values; the target expects linear light.
    let srgb = clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0));
    return vec4<f32>(pow(srgb, vec3<f32>(2.2)), 1.0);
}

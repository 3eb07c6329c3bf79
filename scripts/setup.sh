# Sourced by run.sh and test.sh: installs, on Debian, what building and running Rotunda needs and
# is missing, and points cargo at a build directory outside the clone that later runs reuse.

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || need+=("$1"); }
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v nasm >/dev/null 2>&1 || need+=(nasm)             # openh264's assembly, 3x faster
command -v cmake >/dev/null 2>&1 || need+=(cmake)           # builds libopus
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
want libasound2-dev       # cpal: microphone and speakers (ALSA, PulseAudio through it)
want libclang-dev         # nokhwa: camera bindings (V4L2) are generated with bindgen
want libvulkan1           # the renderer (wgpu)
want mesa-vulkan-drivers  # software Vulkan (lavapipe) where there is no GPU: tests, servers
want libxkbcommon-x11-0   # the window (winit on X11)
want xvfb                 # a screen for the windowed tests, and for run.sh without a display
# Screen sharing (xcap): X11's RandR, Wayland, PipeWire and D-Bus (the desktop portal), EGL, GBM.
want libxcb-randr0-dev
want libwayland-dev
want libpipewire-0.3-dev
want libdbus-1-dev
want libegl-dev
want libgbm-dev
want xauth                # xvfb-run
want brotli               # the browser bundle travels precompressed (scripts/web.sh)
command -v curl >/dev/null 2>&1 || need+=(curl)  # run.sh waits for the relay
if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing ${need[*]} ..."
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "Rotunda needs Rust 1.88 or newer (cargo); install it with rustup, then run this again." >&2
    exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rotunda-target}"

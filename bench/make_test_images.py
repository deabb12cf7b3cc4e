"""Remake the downscaled test images in tests/data from ../shared/images."""

from pathlib import Path

from PIL import Image, ImageOps

SOURCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
NAMES = [
    "content/animal_dog.jpg", "content/building_eiffel_tower.jpg", "content/coast_golden_gate_fog.jpg",
    "content/forest_stream.jpg", "content/street_canal_colorful_houses.jpg",
    "style/hokusai_great_wave.jpg", "style/kandinsky_composition_vii.jpg", "style/monet_water_lilies_1919.jpg",
    "style/munch_the_scream.jpg", "style/van_gogh_starry_night.jpg",
]
LONG_SIDE = 400

if __name__ == "__main__":
    for name in NAMES:
        with Image.open(SOURCE / name) as img:
            image = ImageOps.exif_transpose(img).convert("RGB")
        scale = LONG_SIDE / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        out = Path(__file__).resolve().parents[1] / "tests" / "data" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, quality=90)
        print(out, image.size)

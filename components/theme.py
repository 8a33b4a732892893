"""The studio's own theme: one accent (indigo), slate neutrals, system fonts (nothing fetched from
the network), light and dark following the system. Red is kept for Stop/Cancel, which the tabs
show as `variant="stop"` only while something runs."""

from __future__ import annotations

import gradio as gr

ACCENT = "indigo"
FONT = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
FONT_MONO = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")


def studio_theme() -> gr.themes.Base:
    theme = gr.themes.Base(
        primary_hue=ACCENT,
        secondary_hue=ACCENT,
        neutral_hue="slate",
        radius_size="md",
        spacing_size="md",
        text_size="md",
        font=FONT,
        font_mono=FONT_MONO,
    )
    return theme.set(
        # A desktop feel: a tinted window, white (light) or slate-900 (dark) panels with a soft edge.
        body_background_fill="*neutral_100",
        body_background_fill_dark="*neutral_950",
        background_fill_primary="white",
        background_fill_primary_dark="*neutral_900",
        background_fill_secondary="*neutral_50",
        background_fill_secondary_dark="*neutral_800",
        block_background_fill="white",
        block_background_fill_dark="*neutral_900",
        block_border_color="*neutral_200",
        block_border_color_dark="*neutral_700",
        block_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
        block_radius="10px",
        block_label_text_weight="500",
        block_title_text_weight="600",
        layout_gap="12px",
        # One accent: primary buttons, checkboxes, sliders, the selected tab.
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_500",
        button_primary_background_fill_dark="*primary_500",
        button_primary_background_fill_hover_dark="*primary_400",
        button_primary_text_color="white",
        button_primary_text_color_dark="white",
        button_secondary_background_fill="white",
        button_secondary_background_fill_hover="*neutral_100",
        button_secondary_background_fill_dark="*neutral_800",
        button_secondary_background_fill_hover_dark="*neutral_700",
        button_secondary_border_color="*neutral_300",
        button_secondary_border_color_dark="*neutral_600",
        button_secondary_text_color="*neutral_800",
        button_secondary_text_color_dark="*neutral_100",
        # Stop/Cancel: red, and the tabs use it only while a run is live.
        button_cancel_background_fill="#dc2626",
        button_cancel_background_fill_hover="#b91c1c",
        button_cancel_background_fill_dark="#dc2626",
        button_cancel_background_fill_hover_dark="#ef4444",
        button_cancel_border_color="#dc2626",
        button_cancel_border_color_dark="#dc2626",
        button_cancel_text_color="white",
        button_cancel_text_color_dark="white",
        input_background_fill="white",
        input_background_fill_dark="*neutral_800",
        input_border_color="*neutral_300",
        input_border_color_dark="*neutral_600",
        checkbox_background_color_selected="*primary_600",
        checkbox_background_color_selected_dark="*primary_500",
        slider_color="*primary_600",
        table_even_background_fill="white",
        table_even_background_fill_dark="*neutral_900",
        table_odd_background_fill="*neutral_50",
        table_odd_background_fill_dark="*neutral_800",
    )

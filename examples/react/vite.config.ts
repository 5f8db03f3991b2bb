import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `base: './'` lets the built app be served from any path (the tests serve dist/ as is).
export default defineConfig({ plugins: [react()], base: './' });
